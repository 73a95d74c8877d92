#!/usr/bin/env python3
"""deploy/compose/make-secrets writes every key file the compose lab refers to.

    check_secrets.py --keylinectl PATH COMPOSE_FILE

Runs make-secrets with that keylinectl into a temporary directory and checks, against the
normalised `docker-compose config` of COMPOSE_FILE:
- every top-level secret's file is there, private (no group or other permission bits) and in
  the format of its kind (Curve key pair, software-HSM master key, hex key of the right length);
- every public key file a mounted config or an entrypoint names (/etc/keyline/public/...) is
  there, readable by all, and matches the public line of its pair;
- a second run keeps every file as it is; a lost public file is written again from its pair.
"""

import argparse
import os
import re
import stat
import subprocess
import sys
import tempfile
import tomllib

import yaml

PUBLIC_DIR = "/etc/keyline/public/"
Z85 = r"[0-9A-Za-z.\-:+=^!/*?&<>()\[\]{}@%$#]{40}"
FORMATS = [  # (secret name pattern, content pattern, what)
    (r"-curve-secret$", rf"public = {Z85}\nsecret = {Z85}\n", "Curve key pair"),
    (r"-hsm-master-key$", None, "software-HSM master key"),
    (r"^transport-key$", r"[0-9a-f]{32}\n", "SHE transport key (16 bytes hex)"),
    (r"-state-key$", r"[0-9a-f]{64}\n", "ECU simulator state key (32 bytes hex)"),
]


def compose_model(compose_file):
    out = subprocess.run(["docker-compose", "-f", compose_file, "config"], capture_output=True,
                         text=True, check=True, env=dict(os.environ, COMPOSE_PROJECT_NAME="check"))
    return yaml.safe_load(out.stdout)


def make_secrets(script, keylinectl, out_dir):
    proc = subprocess.run([script, "--out", out_dir], capture_output=True, text=True,
                          env=dict(os.environ, KEYLINECTL=keylinectl))
    if proc.returncode != 0:
        raise SystemExit(f"FAIL: make-secrets exited {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


def public_files_named(model):
    """Every /etc/keyline/public/ file a mounted config or an entrypoint names."""
    named = set()
    for svc in model["services"].values():
        for arg in svc.get("entrypoint") or []:
            if str(arg).startswith(PUBLIC_DIR):
                named.add(arg)
        for value in (svc.get("environment") or {}).values():
            if str(value).startswith(PUBLIC_DIR):
                named.add(value)
        for volume in svc.get("volumes") or []:
            if isinstance(volume, dict) and str(volume.get("target", "")).endswith(".toml"):
                with open(volume["source"], "rb") as f:
                    named |= {v for v in leaves(tomllib.load(f)) if str(v).startswith(PUBLIC_DIR)}
    return named


def leaves(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from leaves(v)
    elif isinstance(value, list):
        for v in value:
            yield from leaves(v)
    else:
        yield value


def snapshot(directory):
    files = {}
    for root, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                files[os.path.relpath(path, directory)] = (f.read(), os.stat(path).st_mode)
    return files


def check(compose_file, keylinectl):
    errors = []
    project = os.path.dirname(os.path.abspath(compose_file))
    script = os.path.join(project, "deploy", "compose", "make-secrets")
    model = compose_model(compose_file)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "secrets")
        make_secrets(script, keylinectl, out)
        if stat.S_IMODE(os.stat(out).st_mode) != 0o700:
            errors.append(f"{out}: mode {oct(os.stat(out).st_mode)}, expected 0700")
        for name, spec in sorted(model["secrets"].items()):
            path = os.path.join(out, os.path.basename(spec["file"]))
            if not os.path.isfile(path):
                errors.append(f"secret {name}: make-secrets wrote no {os.path.basename(path)}")
                continue
            mode = stat.S_IMODE(os.stat(path).st_mode)
            if mode & 0o077 or not mode & 0o400:
                errors.append(f"secret {name}: mode {oct(mode)}; the services refuse key files "
                              "others can read")
            with open(path, "rb") as f:
                content = f.read()
            kinds = [(p, c, w) for p, c, w in FORMATS if re.search(p, name)]
            if not kinds:
                errors.append(f"secret {name}: no known kind")
            for _, pattern, what in kinds:
                if pattern and not re.fullmatch(pattern, content.decode(errors="replace")):
                    errors.append(f"secret {name}: not a {what}")
                if pattern is None and not content.startswith(b"KLMK"):
                    errors.append(f"secret {name}: not a {what} (hsm::CreateMasterKeyFile)")
        for public in sorted(public_files_named(model)):
            path = os.path.join(out, "public", public.removeprefix(PUBLIC_DIR))
            if not os.path.isfile(path):
                errors.append(f"{public}: named by the lab, not written by make-secrets")
                continue
            if stat.S_IMODE(os.stat(path).st_mode) & 0o444 != 0o444:
                errors.append(f"{public}: not readable by all")
            pair = os.path.join(out, os.path.basename(public).replace(".curve.pub", ".curve.secret"))
            with open(path) as f, open(pair) as g:
                if f.read() != g.readline():
                    errors.append(f"{public}: does not match the public line of {pair}")

        before = snapshot(out)
        again = make_secrets(script, keylinectl, out)
        if "wrote" in again or snapshot(out) != before:
            errors.append(f"make-secrets run again changed files: {again.strip()}")
        lost = os.path.join(out, "public", "pks-a.curve.pub")
        os.remove(lost)
        make_secrets(script, keylinectl, out)
        if snapshot(out) != before:
            errors.append("a lost public file was not written again exactly as before (the pair "
                          "must be kept)")
    return errors


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("compose_file")
    parser.add_argument("--keylinectl", required=True)
    args = parser.parse_args()
    errors = check(args.compose_file, os.path.abspath(args.keylinectl))
    for e in errors:
        print(f"FAIL: {e}")
    if not errors:
        print("ok: make-secrets writes every key file the compose lab refers to, and keeps them")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
