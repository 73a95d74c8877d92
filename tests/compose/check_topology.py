#!/usr/bin/env python3
"""Asserts the Keyline lab topology described by docker-compose.yml.

    check_topology.py [--docker-compose CMD] [--project-directory DIR] COMPOSE_FILE
    check_topology.py --self-test COMPOSE_FILE

The file is first normalised by `docker-compose config` (so anchors, merges and relative paths
are resolved exactly as Compose resolves them, and anything Compose rejects fails here), then
the normalised model is checked against the lab as deploy/compose/README.md describes it:

- exactly the services kms, pks-{a,b}, injector-{a,b}{1,2}, ecu-sim-{a,b}, all from one image;
- kms only on backbone; each PKS on backbone + its own plant LAN; injectors and ECU simulators
  only on their plant LAN; the plant LANs are internal; no host networking, no published ports;
- every service has a health check running its own binary's `status --config <its config>`;
- every service has its own named volume <service>-data at /var/lib/keyline, and no other
  writable mount; its config is ./deploy/compose/<service>.toml mounted read-only;
- start order: PKS waits for kms healthy, injectors wait for their PKS and ECU sim healthy;
- secrets come only from files under ./deploy/compose/secrets/, each service gets exactly its
  own; no secret-looking names or key-looking values in the environment; no env_file;
- each mounted config parses as TOML, names key material only by file path (secrets under
  /run/secrets/ that the service actually mounts), and every endpoint it connects to is a
  service on a shared network that listens on that port.

--self-test breaks copies of the file in known ways and requires each copy to be rejected for
the expected reason (and an unbroken copy to pass), so the check cannot silently pass anything.

Needs python3-yaml, which the docker-compose package depends on; a missing docker-compose or
yaml module is a failure, never a skip.
"""

import argparse
import copy
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import tomllib

try:
    import yaml
except ImportError:
    print("FAIL: python3 module 'yaml' missing (Debian: python3-yaml, a dependency of "
          f"docker-compose); interpreter {sys.executable}", file=sys.stderr)
    sys.exit(1)

DATA_DIR = "/var/lib/keyline"
BACKBONE = "backbone"
PLANTS = ("a", "b")
BINARY = {"kms": "keyline-kms", "pks": "keyline-pks", "injector": "keyline-injector",
          "ecu-sim": "keyline-ecu-sim"}


def lan(plant):
    return f"plant-{plant}-lan"


def expected_services():
    """name -> (role, networks, depends_on, secrets)."""
    out = {"kms": ("kms", {BACKBONE}, set(), {"kms-curve-secret", "kms-hsm-master-key"})}
    for p in PLANTS:
        out[f"pks-{p}"] = ("pks", {BACKBONE, lan(p)}, {"kms"},
                           {f"pks-{p}-curve-secret", f"pks-{p}-hsm-master-key"})
        out[f"ecu-sim-{p}"] = ("ecu-sim", {lan(p)}, set(), set())
        for n in (1, 2):
            out[f"injector-{p}{n}"] = ("injector", {lan(p)}, {f"pks-{p}", f"ecu-sim-{p}"},
                                       {f"injector-{p}{n}-curve-secret"})
    return out


EXPECTED = expected_services()

SECRET_NAME = re.compile(r"secret|passw|passphrase|token|private|credential|master|(^|_)key$",
                         re.IGNORECASE)
ENDPOINT = re.compile(r"^tcp://([^:/]+):(\d+)$")
LOCAL_HOSTS = {"*", "0.0.0.0", "127.0.0.1", "localhost", "::", "[::]"}


def looks_like_key_material(value):
    """Hex, base64 or Z85 strings long enough to be a key (paths and URLs excepted)."""
    v = str(value).strip()
    if len(v) < 32 or v.startswith("/") or "://" in v or re.search(r"\s", v):
        return False
    return bool(re.fullmatch(r"[0-9A-Za-z.\-:+=^!/*?&<>()\[\]{}@%$#_]+", v))


def run_compose_config(docker_compose, compose_file, project_dir):
    cmd = shlex.split(docker_compose)
    if shutil.which(cmd[0]) is None:
        return None, (f"docker-compose config: '{cmd[0]}' not found on PATH "
                      "(install it with scripts/deps)")
    cmd += ["-f", compose_file]
    if project_dir:
        cmd += ["--project-directory", project_dir]
    proc = subprocess.run(cmd + ["config"], capture_output=True, text=True,
                          env=dict(os.environ, COMPOSE_PROJECT_NAME="keyline-check"))
    if proc.returncode != 0:
        return None, f"docker-compose config rejected the file: {proc.stderr.strip()}"
    return yaml.safe_load(proc.stdout), None


def parse_volume(v):
    """Normalises a short or long volume entry to (type, source, target, read_only)."""
    if isinstance(v, dict):
        return v.get("type"), v.get("source"), v.get("target"), bool(v.get("read_only"))
    parts = str(v).split(":")
    src, tgt = (parts[0], parts[1]) if len(parts) > 1 else (None, parts[0])
    mode = parts[2] if len(parts) > 2 else "rw"
    kind = "bind" if src and (src.startswith("/") or src.startswith(".")) else "volume"
    return kind, src, tgt, "ro" in mode.split(",")


def toml_leaves(table, prefix=""):
    """Yields (dotted key, value) for every scalar in a parsed TOML document."""
    if isinstance(table, dict):
        for k, v in table.items():
            yield from toml_leaves(v, f"{prefix}.{k}" if prefix else k)
    elif isinstance(table, list):
        for i, v in enumerate(table):
            yield from toml_leaves(v, f"{prefix}[{i + 1}]")
    else:
        yield prefix, table


def check_raw(compose_file, errors):
    """What only the unnormalised file shows: the shared anchor."""
    with open(compose_file, encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"^x-keyline-service:\s*&(\S+)", text, re.MULTILINE)
    if not m:
        errors.append("anchor: no top-level 'x-keyline-service: &<anchor>' for the common parts")
        return
    uses = len(re.findall(r"<<:\s*\*" + re.escape(m.group(1)) + r"\b", text))
    if uses != len(EXPECTED):
        errors.append(f"anchor: x-keyline-service merged into {uses} services, "
                      f"expected all {len(EXPECTED)}")


def check(compose_file, docker_compose="docker-compose", project_dir=None, require_anchor=True):
    """Returns the list of problems found (empty: the topology is right)."""
    errors = []
    project_dir = os.path.abspath(project_dir or os.path.dirname(os.path.abspath(compose_file)))
    model, problem = run_compose_config(docker_compose, compose_file, project_dir)
    if problem:
        return [problem]
    if require_anchor:
        check_raw(compose_file, errors)

    services = model.get("services") or {}
    networks = model.get("networks") or {}
    volumes = model.get("volumes") or {}
    secrets = model.get("secrets") or {}

    # --- services and networks -----------------------------------------------------------------
    if set(services) != set(EXPECTED):
        errors.append(f"services: have {sorted(services)}, expected {sorted(EXPECTED)}")
    for name in (BACKBONE,) + tuple(lan(p) for p in PLANTS):
        if name not in networks:
            errors.append(f"network {name}: missing")
    for p in PLANTS:
        if (networks.get(lan(p)) or {}).get("internal") is not True:
            errors.append(f"network {lan(p)}: must be internal: true (plant LANs do not "
                          "reach the internet)")
    if (networks.get(BACKBONE) or {}).get("internal"):
        errors.append(f"network {BACKBONE}: must not be internal")

    images = {svc.get("image") for svc in services.values()}
    builds = {repr(svc.get("build")) for svc in services.values()}
    if len(images) != 1 or None in images:
        errors.append("image: every service must use the one image, have "
                      f"{sorted(map(str, images))}")
    if len(builds) != 1 or "None" in builds:
        errors.append("image: every service must build the same ./Dockerfile")
    for svc in services.values():
        build = svc.get("build") or {}
        if os.path.abspath(str(build.get("context", ""))) != project_dir or \
                build.get("dockerfile", "Dockerfile") != "Dockerfile":
            errors.append(f"image: build must be context {project_dir}, Dockerfile; have {build}")
            break

    volume_users = {}
    listens = {}     # service -> set of ports it listens on, from its config
    connects = []    # (service, setting, host, port)
    for name, svc in sorted(services.items()):
        if name not in EXPECTED:
            continue
        role, want_nets, want_deps, want_secrets = EXPECTED[name]
        binary = BINARY[role]
        config_path = f"/etc/keyline/{role}.toml"

        nets = set(svc.get("networks") or {})
        if nets != want_nets:
            errors.append(f"{name}: networks {sorted(nets)}, expected {sorted(want_nets)}")
        if "network_mode" in svc:
            errors.append(f"{name}: network_mode {svc['network_mode']!r} bypasses the networks")
        if svc.get("ports"):
            errors.append(f"{name}: publishes ports {svc['ports']}; the lab publishes none")
        if str(svc.get("user", "")).split(":")[0] in ("root", "0"):
            errors.append(f"{name}: runs as root")
        if svc.get("privileged"):
            errors.append(f"{name}: privileged")

        # command and health check
        command = svc.get("command")
        command = shlex.split(command) if isinstance(command, str) else list(command or [])
        if command[:1] != [binary] or config_path not in command:
            errors.append(f"{name}: command {command}, expected [{binary}, --config, "
                          f"{config_path}]")
        hc = svc.get("healthcheck")
        test = hc.get("test") if isinstance(hc, dict) else None
        if not hc or hc.get("disable") or not test or test == ["NONE"]:
            errors.append(f"{name}: healthcheck missing or disabled")
        else:
            test = shlex.split(test) if isinstance(test, str) else list(test)
            argv = test[1:] if test[0] in ("CMD", "CMD-SHELL") else test
            if len(argv) == 1:
                argv = shlex.split(argv[0])
            if argv[:2] != [binary, "status"] or "--config" not in argv or \
                    config_path not in argv:
                errors.append(f"{name}: healthcheck {test}, expected "
                              f"[CMD, {binary}, status, --config, {config_path}]")

        # mounts: one named data volume, a read-only config, nothing else writable
        data, config_src = [], None
        for entry in svc.get("volumes") or []:
            kind, src, tgt, ro = parse_volume(entry)
            if tgt == DATA_DIR:
                data.append((kind, src))
            elif not ro:
                errors.append(f"{name}: writable mount {tgt} besides the data dir")
            if tgt == config_path:
                config_src = src
                if kind != "bind" or not ro:
                    errors.append(f"{name}: config {config_path} must be a read-only bind mount")
        want_volume = f"{name}-data"
        if data != [("volume", want_volume)] or want_volume not in volumes:
            errors.append(f"{name}: data dir {DATA_DIR} must be the named volume {want_volume}, "
                          f"have {data}")
        for _, src in data:
            volume_users.setdefault(src, []).append(name)
        want_config = os.path.join(project_dir, "deploy", "compose", f"{name}.toml")
        if config_src is None:
            errors.append(f"{name}: config {config_path} not mounted")
        elif os.path.abspath(config_src) != want_config:
            errors.append(f"{name}: config mounted from {config_src}, expected {want_config}")

        # start order
        deps = svc.get("depends_on") or {}
        if isinstance(deps, list):
            deps = {d: {"condition": "service_started"} for d in deps}
        if set(deps) != want_deps:
            errors.append(f"{name}: depends_on {sorted(deps)}, expected {sorted(want_deps)}")
        for dep, how in deps.items():
            if (how or {}).get("condition") != "service_healthy":
                errors.append(f"{name}: depends_on {dep} must have condition: service_healthy")

        # secrets and environment
        mounted = {s["source"] if isinstance(s, dict) else s for s in svc.get("secrets") or []}
        if mounted != want_secrets:
            errors.append(f"{name}: secrets {sorted(mounted)}, expected {sorted(want_secrets)}")
        if svc.get("env_file"):
            errors.append(f"{name}: env_file is not allowed (secrets come as docker secrets)")
        env = svc.get("environment") or {}
        if isinstance(env, list):
            env = dict(e.split("=", 1) if "=" in e else (e, None) for e in env)
        for key, value in env.items():
            path_ok = key.upper().endswith("_FILE") and str(value).startswith("/run/secrets/")
            if SECRET_NAME.search(key) and not path_ok:
                errors.append(f"{name}: environment {key} looks like a secret; use a docker "
                              "secret file")
            elif value is not None and looks_like_key_material(value) and not path_ok:
                errors.append(f"{name}: environment {key} holds a value that looks like "
                              "key material")

        # the config file itself
        if config_src and os.path.isfile(config_src):
            try:
                with open(config_src, "rb") as f:
                    conf = tomllib.load(f)
            except (OSError, tomllib.TOMLDecodeError) as e:
                errors.append(f"{name}: config {config_src} does not parse: {e}")
                conf = {}
            if conf and conf.get("data_dir") != DATA_DIR:
                errors.append(f"{name}: config data_dir must be {DATA_DIR}")
            for key, value in toml_leaves(conf):
                leaf = key.rsplit(".", 1)[-1]
                if SECRET_NAME.search(leaf.removesuffix("_file")):
                    if not leaf.endswith("_file"):
                        errors.append(f"{name}: config {key} holds key material inline; name "
                                      "a file")
                    elif "secret" in leaf or "master" in leaf:
                        secret = str(value).removeprefix("/run/secrets/")
                        if not str(value).startswith("/run/secrets/") or secret not in mounted:
                            errors.append(f"{name}: config {key} = {value} is not one of its "
                                          "mounted secrets")
                elif isinstance(value, str) and looks_like_key_material(value):
                    errors.append(f"{name}: config {key} holds a value that looks like "
                                  "key material")
                m = ENDPOINT.match(value) if isinstance(value, str) else None
                if m and leaf == "listen":
                    listens.setdefault(name, set()).add(m.group(2))
                elif m:
                    connects.append((name, key, m.group(1), m.group(2)))
        elif config_src:
            errors.append(f"{name}: config {config_src} does not exist")

    for vol, users in volume_users.items():
        if len(users) > 1:
            errors.append(f"volume {vol}: data dir shared by {users}")

    # every endpoint a service dials is a service on a shared network listening on that port
    for name, key, host, port in connects:
        if host in LOCAL_HOSTS:
            continue
        peer = services.get(host)
        if peer is None:
            errors.append(f"{name}: config {key} dials {host}, which is no service")
            continue
        shared = set(services[name].get("networks") or {}) & set(peer.get("networks") or {})
        if not shared:
            errors.append(f"{name}: config {key} dials {host}, unreachable (no shared network)")
        elif port not in listens.get(host, set()):
            errors.append(f"{name}: config {key} dials {host}:{port}, but {host} listens on "
                          f"{sorted(listens.get(host, set()))}")

    # top-level secrets: files under ./deploy/compose/secrets/, every one used
    secrets_dir = os.path.join(project_dir, "deploy", "compose", "secrets") + os.sep
    used = set()
    for svc in services.values():
        used |= {s["source"] if isinstance(s, dict) else s for s in svc.get("secrets") or []}
    for sname, spec in sorted(secrets.items()):
        src = (spec or {}).get("file")
        if not src or not os.path.abspath(src).startswith(secrets_dir):
            errors.append(f"secret {sname}: must be a file under {secrets_dir}, have {spec}")
        if sname not in used:
            errors.append(f"secret {sname}: defined but not used")
    return errors


# ---- self-test: the check must reject broken files -------------------------------------------

def mutants(original_text):
    """(description, yaml text, expected substring of one of the errors, anchor check?)."""
    base = yaml.safe_load(original_text)

    def edit(fn):
        data = copy.deepcopy(base)
        fn(data)
        return yaml.safe_dump(data, sort_keys=False)

    s = lambda d, n: d["services"][n]  # noqa: E731
    inj_a1_data = {"type": "volume", "source": "injector-a1-data", "target": DATA_DIR}
    yield "unbroken copy (control)", edit(lambda d: None), None, False
    yield "syntax error", original_text + "\nservices: [\n", "docker-compose config", True
    yield "unknown key", edit(lambda d: s(d, "kms").update(netwroks=["backbone"])), \
        "docker-compose config", False
    yield "anchor renamed", original_text.replace("x-keyline-service:", "x-common:", 1), \
        "anchor:", True
    yield "injector on backbone", edit(lambda d: s(d, "injector-a1")["networks"].append(
        "backbone")), "injector-a1: networks", False
    yield "kms on a plant LAN", edit(lambda d: s(d, "kms")["networks"].append("plant-b-lan")), \
        "kms: networks", False
    yield "PKS without its LAN", edit(lambda d: s(d, "pks-b").update(networks=["backbone"])), \
        "pks-b: networks", False
    yield "ECU sim on the other plant", edit(lambda d: s(d, "ecu-sim-a").update(
        networks=["plant-b-lan"])), "ecu-sim-a: networks", False
    yield "plant LAN not internal", edit(lambda d: d["networks"]["plant-a-lan"].pop(
        "internal")), "network plant-a-lan", False
    yield "no health check", edit(lambda d: s(d, "ecu-sim-b").pop("healthcheck")), \
        "ecu-sim-b: healthcheck", False
    yield "health check disabled", edit(lambda d: s(d, "kms").update(
        healthcheck={"disable": True})), "kms: healthcheck", False
    yield "health check of another binary", edit(lambda d: s(d, "pks-a")["healthcheck"].update(
        test=["CMD", "keyline-kms", "status"])), "pks-a: healthcheck", False
    yield "data volume shared", edit(lambda d: s(d, "injector-a2")["volumes"].__setitem__(
        0, inj_a1_data)), "volume injector-a1-data", False
    yield "data dir not a named volume", edit(lambda d: s(d, "pks-a")["volumes"].__setitem__(
        0, {"type": "bind", "source": "/tmp", "target": DATA_DIR})), "pks-a: data dir", False
    yield "writable config", edit(lambda d: s(d, "kms")["volumes"][1].update(
        read_only=False)), "kms: config", False
    # The merged environment is one object shared by all services: replace it, do not edit it.
    yield "secret in environment", edit(lambda d: s(d, "kms").update(environment=dict(
        s(d, "kms")["environment"], KEYLINE_HSM_PASSPHRASE="correct horse"))), \
        "kms: environment", False
    yield "key-looking environment value", edit(lambda d: s(d, "injector-b1").update(
        environment=dict(s(d, "injector-b1")["environment"], KEYLINE_OPTS="3f" * 32))), \
        "injector-b1: environment", False
    yield "secret outside secrets dir", edit(lambda d: d["secrets"]["kms-curve-secret"].update(
        file="./kms.curve.secret")), "secret kms-curve-secret", False
    yield "another service's secret", edit(lambda d: s(d, "injector-a1")["secrets"].append(
        "pks-a-hsm-master-key")), "injector-a1: secrets", False
    yield "PKS not waiting for healthy KMS", edit(lambda d: s(d, "pks-a")["depends_on"][
        "kms"].update(condition="service_started")), "pks-a: depends_on", False
    yield "injector not waiting for PKS", edit(lambda d: s(d, "injector-b2")["depends_on"].pop(
        "pks-b")), "injector-b2: depends_on", False
    yield "missing service", edit(lambda d: d["services"].pop("injector-b2")), "services:", False
    yield "second image", edit(lambda d: s(d, "ecu-sim-a").update(image="busybox")), \
        "image:", False
    yield "published port", edit(lambda d: s(d, "injector-a1").update(ports=["7400:7400"])), \
        "injector-a1: publishes", False


def self_test(compose_file, docker_compose):
    project_dir = os.path.dirname(os.path.abspath(compose_file))
    with open(compose_file, encoding="utf-8") as f:
        text = f.read()
    failed = 0
    errors = check(compose_file, docker_compose)
    print(f"{'ok' if not errors else 'FAIL'}: original file passes")
    failed += bool(errors)
    with tempfile.TemporaryDirectory() as tmp:
        # A config that dials the other plant's PKS, for the reachability check.
        bad_toml = os.path.join(tmp, "injector-a1.toml")
        with open(os.path.join(project_dir, "deploy", "compose", "injector-a1.toml")) as f:
            conf = f.read()
        with open(bad_toml, "w") as f:
            f.write(conf.replace("tcp://pks-a:7200", "tcp://pks-b:7200"))
        base = yaml.safe_load(text)
        base["services"]["injector-a1"]["volumes"][1]["source"] = bad_toml
        cases = list(mutants(text)) + [
            ("config dials the other plant's PKS", yaml.safe_dump(base, sort_keys=False),
             "injector-a1: config pks.connect dials pks-b, unreachable", False)]
        for i, (what, mutant, expect, anchor) in enumerate(cases):
            path = os.path.join(tmp, f"mutant-{i}.yml")
            with open(path, "w", encoding="utf-8") as f:
                f.write(mutant)
            errors = check(path, docker_compose, project_dir, require_anchor=anchor)
            hits = [e for e in errors if expect is not None and expect in e]
            ok = not errors if expect is None else bool(hits)
            failed += not ok
            shown = (hits or errors)[:1]
            print(f"{'ok' if ok else 'FAIL'}: {what}: "
                  + ("passes" if not errors else f"rejected: {shown[0]}"
                     + (f" (+{len(errors) - 1} more)" if len(errors) > 1 else "")))
            if not ok:
                print(f"      expected {'no error' if expect is None else repr(expect)}; "
                      f"got {errors}")
    print(f"self-test: {len(cases) + 1 - failed} of {len(cases) + 1} cases as expected")
    return 1 if failed else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("compose_file")
    parser.add_argument("--docker-compose", default="docker-compose",
                        help="command that runs Compose v1 (default: docker-compose)")
    parser.add_argument("--project-directory", help="default: the compose file's directory")
    parser.add_argument("--self-test", action="store_true",
                        help="check that broken copies of COMPOSE_FILE are rejected")
    args = parser.parse_args()
    if args.self_test:
        return self_test(args.compose_file, args.docker_compose)
    errors = check(args.compose_file, args.docker_compose, args.project_directory)
    for e in errors:
        print(f"FAIL: {e}")
    if not errors:
        print(f"ok: {args.compose_file}: {len(EXPECTED)} services, topology as expected")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
