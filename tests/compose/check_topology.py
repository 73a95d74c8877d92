#!/usr/bin/env python3
"""Asserts the Keyline lab topology described by docker-compose.yml.

    check_topology.py [--docker-compose CMD] [--project-directory DIR] COMPOSE_FILE
    check_topology.py --self-test COMPOSE_FILE

The file is first normalised by `docker-compose config` (so anchors, merges and relative paths
are resolved exactly as Compose resolves them, and anything Compose rejects fails here), then
the normalised model is checked against the lab as deploy/compose/README.md describes it:

- exactly the services kms, setup, pks-{a,b}, injector-{a,b}{1,2}, ecu-sim-{a,b}, one image;
- kms and setup only on backbone; each PKS on backbone + its own plant LAN; injectors and ECU
  simulators only on their plant LAN; the plant LANs are internal; no host networking, no
  published ports;
- every service starts through keyline-entrypoint, as root with no capability beyond CHOWN,
  DAC_READ_SEARCH, SETUID and SETGID, no-new-privileges, a read-only root filesystem and a
  tmpfs at /run/keyline for the copied secrets; no `user:` (the entrypoint drops to keyline);
  each PKS's imports the transport key under the name the setup service registers the
  product with;
- every long-running service has a health check running its own binary's `status --config <its
  config>` through keyline-entrypoint; setup is one-shot (restart "no", no health check);
- every service has its own named volume <service>-data at /var/lib/keyline, and no other
  writable mount; its config is ./deploy/compose/<service>.toml mounted read-only (setup: the
  PKS and injector configs it reads, and its script);
- start order: setup waits for kms healthy; each PKS for kms healthy and setup completed
  successfully; injectors for their PKS and ECU sim healthy;
- secrets come only from files under ./deploy/compose/secrets/, each service gets exactly its
  own; no secret-looking names or key-looking values in the environment; no env_file;
- each mounted config parses as TOML, uses absolute paths, names key material only by file
  path (a secret the service mounts, as copied to /run/keyline/secrets/, or a file the service
  creates in its own data dir), expects the public key of the very service it dials, and every
  endpoint it dials is a service on a shared network that listens on that port; each ECU
  simulator admits exactly its plant's injectors, by their station ids and public keys; the
  KMS admits exactly the admin key that make-secrets makes (admin_key_files).

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
CONFIG_DIR = "/etc/keyline"
PUBLIC_DIR = "/etc/keyline/public"
SECRETS_COPY_DIR = "/run/keyline/secrets/"
RUN_TMPFS = "/run/keyline"
ENTRYPOINT = "keyline-entrypoint"
ENTRYPOINT_CAPS = {"CHOWN", "DAC_READ_SEARCH", "SETUID", "SETGID"}
BACKBONE = "backbone"
PLANTS = ("a", "b")
BINARY = {"kms": "keyline-kms", "pks": "keyline-pks", "injector": "keyline-injector",
          "ecu-sim": "keyline-ecu-sim"}
HEALTHY = "service_healthy"
DONE = "service_completed_successfully"
TRANSPORT_KEY = "transport-key"
SETUP_SCRIPT = "/etc/keyline/setup"


def lan(plant):
    return f"plant-{plant}-lan"


def expected_services():
    """name -> (role, networks, {dependency: condition}, secrets)."""
    out = {
        "kms": ("kms", {BACKBONE}, {}, {"kms-curve-secret", "kms-hsm-master-key"}),
        # setup reads each PKS's keys (`keyline-pks keys show`) to register the plants.
        "setup": ("setup", {BACKBONE}, {"kms": HEALTHY},
                  {"admin-curve-secret"} | {f"pks-{p}-{s}" for p in PLANTS
                                            for s in ("curve-secret", "hsm-master-key")}),
    }
    for p in PLANTS:
        out[f"pks-{p}"] = ("pks", {BACKBONE, lan(p)}, {"kms": HEALTHY, "setup": DONE},
                           {f"pks-{p}-curve-secret", f"pks-{p}-hsm-master-key", TRANSPORT_KEY})
        out[f"ecu-sim-{p}"] = ("ecu-sim", {lan(p)}, {},
                               {f"ecu-sim-{p}-curve-secret", f"ecu-sim-{p}-state-key",
                                TRANSPORT_KEY})
        for n in (1, 2):
            out[f"injector-{p}{n}"] = ("injector", {lan(p)},
                                       {f"pks-{p}": HEALTHY, f"ecu-sim-{p}": HEALTHY},
                                       {f"injector-{p}{n}-curve-secret"})
    return out


EXPECTED = expected_services()
SETUP_CONFIGS = [f"pks-{p}" for p in PLANTS] + [f"injector-{p}{n}" for p in PLANTS
                                                 for n in (1, 2)]

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


def argv_of(value):
    if isinstance(value, str):
        return shlex.split(value)
    return list(value or [])


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


def toml_tables(table, prefix=""):
    """Yields (dotted name, table) for the document and every table in it."""
    yield prefix, table
    for k, v in table.items():
        name = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict):
            yield from toml_tables(v, name)
        elif isinstance(v, list):
            for i, item in enumerate(v):
                if isinstance(item, dict):
                    yield from toml_tables(item, f"{name}[{i + 1}]")


def public_key_file(service):
    return f"{PUBLIC_DIR}/{service}.curve.pub"


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


class Lab:
    """The normalised model and what the checks learn from it on the way."""

    def __init__(self, model, project_dir):
        self.services = model.get("services") or {}
        self.networks = model.get("networks") or {}
        self.volumes = model.get("volumes") or {}
        self.secrets = model.get("secrets") or {}
        self.project_dir = project_dir
        self.errors = []
        self.listens = {}     # service -> ports it listens on, from its own config
        self.connects = []    # (service, setting, host, port)
        self.configs = {}     # (service, path inside) -> parsed TOML of its own config(s)

    def fail(self, message):
        self.errors.append(message)

    def mounted_secrets(self, svc):
        return {s["source"] if isinstance(s, dict) else s for s in svc.get("secrets") or []}

    def compose_path(self, name):
        return os.path.join(self.project_dir, "deploy", "compose", name)

    def setup_env(self):
        env = (self.services.get("setup") or {}).get("environment") or {}
        if isinstance(env, list):
            env = dict(e.split("=", 1) if "=" in e else (e, None) for e in env)
        return env


def check_networks_and_image(lab):
    if set(lab.services) != set(EXPECTED):
        lab.fail(f"services: have {sorted(lab.services)}, expected {sorted(EXPECTED)}")
    for name in (BACKBONE,) + tuple(lan(p) for p in PLANTS):
        if name not in lab.networks:
            lab.fail(f"network {name}: missing")
    for p in PLANTS:
        if (lab.networks.get(lan(p)) or {}).get("internal") is not True:
            lab.fail(f"network {lan(p)}: must be internal: true (plant LANs do not reach the "
                     "internet)")
    if (lab.networks.get(BACKBONE) or {}).get("internal"):
        lab.fail(f"network {BACKBONE}: must not be internal")
    images = {svc.get("image") for svc in lab.services.values()}
    builds = {repr(svc.get("build")) for svc in lab.services.values()}
    if len(images) != 1 or None in images:
        lab.fail(f"image: every service must use the one image, have {sorted(map(str, images))}")
    if len(builds) != 1 or "None" in builds:
        lab.fail("image: every service must build the same ./Dockerfile")
    for svc in lab.services.values():
        build = svc.get("build") or {}
        if os.path.abspath(str(build.get("context", ""))) != lab.project_dir or \
                build.get("dockerfile", "Dockerfile") != "Dockerfile":
            lab.fail(f"image: build must be context {lab.project_dir}, Dockerfile; have {build}")
            break


def check_privileges(lab, name, svc, role):
    """The entrypoint starts as root to copy the secrets, then drops to keyline for good."""
    entrypoint = argv_of(svc.get("entrypoint"))
    want = [ENTRYPOINT]
    if role == "pks":
        ref = lab.setup_env().get("LAB_TRANSPORT_KEY_REF")
        want += ["--import-transport-key", f"{ref}={SECRETS_COPY_DIR}{TRANSPORT_KEY}"]
    if entrypoint != want:
        lab.fail(f"{name}: entrypoint {entrypoint}, expected {want}")
    if svc.get("user") not in (None, ""):
        lab.fail(f"{name}: user {svc.get('user')!r}: the container must start as root so that "
                 f"{ENTRYPOINT} can copy the secrets; it drops to keyline itself")
    if svc.get("privileged"):
        lab.fail(f"{name}: privileged")
    if "ALL" not in set(svc.get("cap_drop") or []):
        lab.fail(f"{name}: cap_drop must be [ALL]")
    extra = set(svc.get("cap_add") or []) - ENTRYPOINT_CAPS
    if extra:
        lab.fail(f"{name}: cap_add {sorted(extra)} beyond what {ENTRYPOINT} needs "
                 f"{sorted(ENTRYPOINT_CAPS)}")
    if "no-new-privileges:true" not in (svc.get("security_opt") or []):
        lab.fail(f"{name}: security_opt must hold no-new-privileges:true")
    if svc.get("read_only") is not True:
        lab.fail(f"{name}: read_only must be true")
    tmpfs = [str(t).split(":", 1)[0] for t in (svc.get("tmpfs") or [])]
    if RUN_TMPFS not in tmpfs:
        lab.fail(f"{name}: no tmpfs at {RUN_TMPFS}: the secrets would be copied to disk")


def check_command_and_health(lab, name, svc, role):
    command = argv_of(svc.get("command"))
    hc = svc.get("healthcheck")
    if role == "setup":
        if command != ["sh", SETUP_SCRIPT]:
            lab.fail(f"{name}: command {command}, expected [sh, {SETUP_SCRIPT}]")
        if str(svc.get("restart", "no")).lower() not in ("no", "false"):
            lab.fail(f"{name}: restart {svc.get('restart')!r}; a one-shot service must not restart")
        return
    binary = BINARY[role]
    config_path = f"{CONFIG_DIR}/{role}.toml"
    if command[:1] != [binary] or config_path not in command:
        lab.fail(f"{name}: command {command}, expected [{binary}, --config, {config_path}]")
    test = hc.get("test") if isinstance(hc, dict) else None
    if not hc or hc.get("disable") or not test or test == ["NONE"]:
        lab.fail(f"{name}: healthcheck missing or disabled")
        return
    test = argv_of(test)
    argv = test[1:] if test[0] in ("CMD", "CMD-SHELL") else test
    if len(argv) == 1:
        argv = shlex.split(argv[0])
    if argv[:3] != [ENTRYPOINT, binary, "status"] or "--config" not in argv or \
            config_path not in argv:
        lab.fail(f"{name}: healthcheck {test}, expected [CMD, {ENTRYPOINT}, {binary}, status, "
                 f"--config, {config_path}]")


def check_mounts(lab, name, svc, role, volume_users):
    """One named data volume, read-only configs; returns {path inside: host file} of configs."""
    if role == "setup":
        wanted = {SETUP_SCRIPT: lab.compose_path("setup")}
        wanted.update({f"{CONFIG_DIR}/{c}.toml": lab.compose_path(f"{c}.toml")
                       for c in SETUP_CONFIGS})
    else:
        wanted = {f"{CONFIG_DIR}/{role}.toml": lab.compose_path(f"{name}.toml")}
    data, mounted = [], {}
    for entry in svc.get("volumes") or []:
        kind, src, tgt, ro = parse_volume(entry)
        if tgt == DATA_DIR:
            data.append((kind, src))
        elif not ro:
            lab.fail(f"{name}: writable mount {tgt} besides the data dir")
        if tgt in wanted or (tgt or "").endswith(".toml"):
            if kind != "bind" or not ro:
                lab.fail(f"{name}: config {tgt} must be a read-only bind mount")
            mounted[tgt] = src
    want_volume = f"{name}-data"
    if data != [("volume", want_volume)] or want_volume not in lab.volumes:
        lab.fail(f"{name}: data dir {DATA_DIR} must be the named volume {want_volume}, "
                 f"have {data}")
    for _, src in data:
        volume_users.setdefault(src, []).append(name)
    for tgt, want in wanted.items():
        if tgt not in mounted:
            lab.fail(f"{name}: config {tgt} not mounted")
        elif os.path.abspath(mounted[tgt]) != want:
            lab.fail(f"{name}: config {tgt} mounted from {mounted[tgt]}, expected {want}")
    return {tgt: src for tgt, src in mounted.items() if tgt.endswith(".toml")}


def check_start_order(lab, name, svc, want_deps):
    deps = svc.get("depends_on") or {}
    if isinstance(deps, list):
        deps = {d: {"condition": "service_started"} for d in deps}
    if set(deps) != set(want_deps):
        lab.fail(f"{name}: depends_on {sorted(deps)}, expected {sorted(want_deps)}")
    for dep, how in deps.items():
        want = want_deps.get(dep, HEALTHY)
        if (how or {}).get("condition") != want:
            lab.fail(f"{name}: depends_on {dep} must have condition: {want}")


def check_environment(lab, name, svc):
    if svc.get("env_file"):
        lab.fail(f"{name}: env_file is not allowed (secrets come as docker secrets)")
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) if "=" in e else (e, None) for e in env)
    mounted = lab.mounted_secrets(svc)
    for key, value in env.items():
        # A path to a secret's copy is fine, whatever the variable is called (KEYLINE_ADMIN_KEY).
        text = str(value)
        is_copy = text.startswith(SECRETS_COPY_DIR)
        if is_copy and text.removeprefix(SECRETS_COPY_DIR) not in mounted:
            lab.fail(f"{name}: environment {key} = {value} is not one of its mounted secrets")
        elif SECRET_NAME.search(key) and not is_copy and not key.upper().endswith("_FILE"):
            lab.fail(f"{name}: environment {key} looks like a secret; use a docker secret file")
        elif value is not None and looks_like_key_material(value) and not is_copy:
            lab.fail(f"{name}: environment {key} holds a value that looks like key material")
        m = ENDPOINT.match(text)
        if m:
            lab.connects.append((name, f"environment {key}", m.group(1), m.group(2)))


def check_config_file(lab, name, svc, target, source, own):
    """One mounted TOML config. `own`: the service's own config (its endpoints count)."""
    if not os.path.isfile(source):
        lab.fail(f"{name}: config {source} does not exist")
        return
    try:
        with open(source, "rb") as f:
            conf = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        lab.fail(f"{name}: config {source} does not parse: {e}")
        return
    lab.configs[(name, target)] = conf
    data_dir = conf.get("data_dir", (conf.get("kms") or {}).get("data_dir"))
    if data_dir != DATA_DIR:
        lab.fail(f"{name}: config {target} data_dir must be {DATA_DIR}")
    mounted = lab.mounted_secrets(svc)
    for key, value in toml_leaves(conf):
        leaf = key.rsplit(".", 1)[-1]
        if (leaf.endswith("_file") or leaf == "data_dir") and not str(value).startswith("/"):
            lab.fail(f"{name}: config {key} = {value}: use absolute paths in the lab's configs")
        if "public" in leaf:
            if not str(value).startswith(PUBLIC_DIR + "/"):
                lab.fail(f"{name}: config {key} = {value} is not under {PUBLIC_DIR}/")
        elif SECRET_NAME.search(leaf.removesuffix("_file")):
            if not leaf.endswith("_file"):
                lab.fail(f"{name}: config {key} holds key material inline; name a file")
            elif str(value).startswith(SECRETS_COPY_DIR):
                # setup reads injector configs for their station ids only, not their keys.
                if own and str(value).removeprefix(SECRETS_COPY_DIR) not in mounted:
                    lab.fail(f"{name}: config {key} = {value} is not one of its mounted secrets")
            elif not str(value).startswith(DATA_DIR + "/"):
                lab.fail(f"{name}: config {key} = {value}: a key file is a mounted secret "
                         f"({SECRETS_COPY_DIR}NAME) or made by the service in {DATA_DIR}/")
        elif isinstance(value, str) and looks_like_key_material(value):
            lab.fail(f"{name}: config {key} holds a value that looks like key material")
        m = ENDPOINT.match(value) if isinstance(value, str) else None
        if m and own and (leaf == "listen" or leaf.endswith("_bind")):
            lab.listens.setdefault(name, set()).add(m.group(2))
        elif m and own:
            lab.connects.append((name, f"config {key}", m.group(1), m.group(2)))
    # The key a client expects is the public key of the very service it dials.
    for table_name, table in toml_tables(conf):
        m = ENDPOINT.match(str(table.get("connect", "")))
        if m and "curve_public_key_file" in table and m.group(1) not in LOCAL_HOSTS:
            want = public_key_file(m.group(1))
            if table["curve_public_key_file"] != want:
                lab.fail(f"{name}: config {table_name}.curve_public_key_file = "
                         f"{table['curve_public_key_file']}, but it dials {m.group(1)}: "
                         f"expected {want}")


def check_endpoints(lab):
    """Every endpoint a service dials is a service on a shared network listening on that port."""
    for name, key, host, port in lab.connects:
        if host in LOCAL_HOSTS:
            continue
        peer = lab.services.get(host)
        if peer is None:
            lab.fail(f"{name}: {key} dials {host}, which is no service")
            continue
        shared = set(lab.services[name].get("networks") or {}) & set(peer.get("networks") or {})
        if not shared:
            lab.fail(f"{name}: {key} dials {host}, unreachable (no shared network)")
        elif port not in lab.listens.get(host, set()):
            lab.fail(f"{name}: {key} dials {host}:{port}, but {host} listens on "
                     f"{sorted(lab.listens.get(host, set()))}")
    env = lab.setup_env()
    kms = ENDPOINT.match(str(env.get("KEYLINE_KMS", "")))
    if not kms or env.get("KEYLINE_KMS_CURVE_KEY_FILE") != public_key_file(kms.group(1)):
        lab.fail(f"setup: KEYLINE_KMS {env.get('KEYLINE_KMS')} with "
                 f"KEYLINE_KMS_CURVE_KEY_FILE {env.get('KEYLINE_KMS_CURVE_KEY_FILE')}: expected the "
                 "KMS's endpoint and its public key file")


def check_simulator_clients(lab):
    """Each ECU simulator admits exactly its plant's injectors: their station ids and keys."""
    for p in PLANTS:
        sim = lab.configs.get((f"ecu-sim-{p}", f"{CONFIG_DIR}/ecu-sim.toml"))
        if sim is None:
            continue
        have = {(c.get("id"), c.get("curve_public_key_file")) for c in sim.get("client") or []}
        want = set()
        for n in (1, 2):
            injector = f"injector-{p}{n}"
            conf = lab.configs.get((injector, f"{CONFIG_DIR}/injector.toml")) or {}
            want.add(((conf.get("station") or {}).get("id"), public_key_file(injector)))
        if have != want:
            lab.fail(f"ecu-sim-{p}: config client entries {sorted(map(str, have))}, expected "
                     f"{sorted(map(str, want))} (its plant's injectors)")


def check_admin_keys(lab):
    """keylinectl (the setup service) gets into the KMS with the admin key make-secrets made."""
    conf = (lab.configs.get(("kms", f"{CONFIG_DIR}/kms.toml")) or {}).get("kms") or {}
    have = (conf.get("admin_key_files"), conf.get("admin_keys"))
    want = ([public_key_file("admin")], None)
    if have != want:
        lab.fail(f"kms: config kms.admin_key_files, admin_keys = {have}, expected {want} "
                 "(the admin key is made per installation)")


def check_secret_files(lab):
    """Top-level secrets: files under ./deploy/compose/secrets/, every one used."""
    secrets_dir = os.path.join(lab.project_dir, "deploy", "compose", "secrets") + os.sep
    used = set()
    for svc in lab.services.values():
        used |= lab.mounted_secrets(svc)
    for sname, spec in sorted(lab.secrets.items()):
        src = (spec or {}).get("file")
        if not src or not os.path.abspath(src).startswith(secrets_dir):
            lab.fail(f"secret {sname}: must be a file under {secrets_dir}, have {spec}")
        if sname not in used:
            lab.fail(f"secret {sname}: defined but not used")


def check(compose_file, docker_compose="docker-compose", project_dir=None, require_anchor=True):
    """Returns the list of problems found (empty: the topology is right)."""
    project_dir = os.path.abspath(project_dir or os.path.dirname(os.path.abspath(compose_file)))
    model, problem = run_compose_config(docker_compose, compose_file, project_dir)
    if problem:
        return [problem]
    lab = Lab(model, project_dir)
    if require_anchor:
        check_raw(compose_file, lab.errors)
    check_networks_and_image(lab)

    volume_users = {}
    for name, svc in sorted(lab.services.items()):
        if name not in EXPECTED:
            continue
        role, want_nets, want_deps, want_secrets = EXPECTED[name]
        nets = set(svc.get("networks") or {})
        if nets != want_nets:
            lab.fail(f"{name}: networks {sorted(nets)}, expected {sorted(want_nets)}")
        if "network_mode" in svc:
            lab.fail(f"{name}: network_mode {svc['network_mode']!r} bypasses the networks")
        if svc.get("ports"):
            lab.fail(f"{name}: publishes ports {svc['ports']}; the lab publishes none")
        check_privileges(lab, name, svc, role)
        check_command_and_health(lab, name, svc, role)
        configs = check_mounts(lab, name, svc, role, volume_users)
        check_start_order(lab, name, svc, want_deps)
        if lab.mounted_secrets(svc) != want_secrets:
            lab.fail(f"{name}: secrets {sorted(lab.mounted_secrets(svc))}, expected "
                     f"{sorted(want_secrets)}")
        check_environment(lab, name, svc)
        for target, source in sorted(configs.items()):
            check_config_file(lab, name, svc, target, source, own=role != "setup")

    for vol, users in volume_users.items():
        if len(users) > 1:
            lab.fail(f"volume {vol}: data dir shared by {users}")
    check_endpoints(lab)
    check_simulator_clients(lab)
    check_admin_keys(lab)
    check_secret_files(lab)
    return lab.errors


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
    yield "setup on a plant LAN", edit(lambda d: s(d, "setup")["networks"].append(
        "plant-a-lan")), "setup: networks", False
    yield "ECU sim on the other plant", edit(lambda d: s(d, "ecu-sim-a").update(
        networks=["plant-b-lan"])), "ecu-sim-a: networks", False
    yield "plant LAN not internal", edit(lambda d: d["networks"]["plant-a-lan"].pop(
        "internal")), "network plant-a-lan", False
    yield "no health check", edit(lambda d: s(d, "ecu-sim-b").pop("healthcheck")), \
        "ecu-sim-b: healthcheck", False
    yield "health check disabled", edit(lambda d: s(d, "kms").update(
        healthcheck={"disable": True})), "kms: healthcheck", False
    yield "health check of another binary", edit(lambda d: s(d, "pks-a")["healthcheck"].update(
        test=["CMD", ENTRYPOINT, "keyline-kms", "status"])), "pks-a: healthcheck", False
    yield "health check as root, not through the entrypoint", edit(
        lambda d: s(d, "injector-b1")["healthcheck"].update(
            test=["CMD", "keyline-injector", "status", "--config",
                  "/etc/keyline/injector.toml"])), "injector-b1: healthcheck", False
    yield "data volume shared", edit(lambda d: s(d, "injector-a2")["volumes"].__setitem__(
        0, inj_a1_data)), "volume injector-a1-data", False
    yield "data dir not a named volume", edit(lambda d: s(d, "pks-a")["volumes"].__setitem__(
        0, {"type": "bind", "source": "/tmp", "target": DATA_DIR})), "pks-a: data dir", False
    yield "writable config", edit(lambda d: s(d, "kms")["volumes"][1].update(
        read_only=False)), "kms: config", False
    yield "setup without an injector config", edit(lambda d: s(d, "setup")["volumes"].pop(5)), \
        "setup: config /etc/keyline/injector-a2.toml not mounted", False
    # The merged environment is one object shared by all services: replace it, do not edit it.
    yield "secret in environment", edit(lambda d: s(d, "kms").update(environment=dict(
        s(d, "kms")["environment"], KEYLINE_HSM_PASSPHRASE="correct horse"))), \
        "kms: environment", False
    yield "key-looking environment value", edit(lambda d: s(d, "injector-b1").update(
        environment=dict(s(d, "injector-b1")["environment"], KEYLINE_OPTS="3f" * 32))), \
        "injector-b1: environment", False
    yield "environment names another service's secret", edit(
        lambda d: s(d, "setup")["environment"].update(
            KEYLINE_ADMIN_KEY="/run/keyline/secrets/kms-curve-secret")), \
        "setup: environment KEYLINE_ADMIN_KEY", False
    yield "secret outside secrets dir", edit(lambda d: d["secrets"]["kms-curve-secret"].update(
        file="./kms.curve.secret")), "secret kms-curve-secret", False
    yield "another service's secret", edit(lambda d: s(d, "injector-a1")["secrets"].append(
        "pks-a-hsm-master-key")), "injector-a1: secrets", False
    yield "ECU sim without the transport key", edit(lambda d: s(d, "ecu-sim-b")["secrets"].remove(
        TRANSPORT_KEY)), "ecu-sim-b: secrets", False
    yield "PKS not waiting for healthy KMS", edit(lambda d: s(d, "pks-a")["depends_on"][
        "kms"].update(condition="service_started")), "pks-a: depends_on", False
    yield "PKS not waiting for setup to finish", edit(lambda d: s(d, "pks-b")["depends_on"][
        "setup"].update(condition="service_started")), "pks-b: depends_on setup", False
    yield "injector not waiting for PKS", edit(lambda d: s(d, "injector-b2")["depends_on"].pop(
        "pks-b")), "injector-b2: depends_on", False
    yield "setup restarts", edit(lambda d: s(d, "setup").update(restart="unless-stopped")), \
        "setup: restart", False
    yield "missing service", edit(lambda d: d["services"].pop("injector-b2")), "services:", False
    yield "second image", edit(lambda d: s(d, "ecu-sim-a").update(image="busybox")), \
        "image:", False
    yield "published port", edit(lambda d: s(d, "injector-a1").update(ports=["7400:7400"])), \
        "injector-a1: publishes", False
    yield "starts as the service user", edit(lambda d: s(d, "kms").update(user="keyline")), \
        "kms: user", False
    yield "no entrypoint", edit(lambda d: s(d, "ecu-sim-a").pop("entrypoint")), \
        "ecu-sim-a: entrypoint", False
    yield "PKS imports the transport key under another name", edit(
        lambda d: s(d, "pks-b").update(entrypoint=[
            ENTRYPOINT, "--import-transport-key", "other=/run/keyline/secrets/transport-key"])), \
        "pks-b: entrypoint", False
    yield "capability beyond the entrypoint's", edit(lambda d: s(d, "pks-a").update(
        cap_add=["CHOWN", "DAC_READ_SEARCH", "SETUID", "SETGID", "SYS_ADMIN"])), \
        "pks-a: cap_add", False
    yield "secrets copied to disk", edit(lambda d: s(d, "injector-a2").update(tmpfs=["/tmp"])), \
        "injector-a2: no tmpfs at /run/keyline", False
    yield "new privileges allowed", edit(lambda d: s(d, "setup").update(security_opt=[])), \
        "setup: security_opt", False


def config_mutant(project_dir, tmp, service, index, original, replacement):
    """A copy of the compose file whose `service` mounts a config with one text replaced."""
    source = os.path.join(project_dir, "deploy", "compose", f"{service}.toml")
    with open(source, encoding="utf-8") as f:
        text = f.read()
    if original not in text:
        raise AssertionError(f"self-test: {source} no longer holds {original!r}")
    bad = os.path.join(tmp, f"{service}-{index}.toml")
    with open(bad, "w", encoding="utf-8") as f:
        f.write(text.replace(original, replacement))
    return bad


def self_test(compose_file, docker_compose):
    project_dir = os.path.dirname(os.path.abspath(compose_file))
    with open(compose_file, encoding="utf-8") as f:
        text = f.read()
    failed = 0
    errors = check(compose_file, docker_compose)
    print(f"{'ok' if not errors else 'FAIL'}: original file passes")
    for e in errors:
        print(f"      {e}")
    failed += bool(errors)
    with tempfile.TemporaryDirectory() as tmp:
        config_cases = [
            ("config dials the other plant's PKS", "injector-a1",
             "tcp://pks-a:7200", "tcp://pks-b:7200",
             "injector-a1: config pks.connect dials pks-b, unreachable"),
            ("config names another service's secret", "ecu-sim-a",
             "/run/keyline/secrets/ecu-sim-a-state-key", "/run/keyline/secrets/ecu-sim-b-state-key",
             "ecu-sim-a: config ecu.state_key_file"),
            ("config keeps a key file on the read-only image", "pks-b",
             "/run/keyline/secrets/pks-b-hsm-master-key", "/etc/keyline/pks-b.master",
             "pks-b: config hsm.master_key_file"),
            ("config expects another service's public key", "injector-b2",
             "/etc/keyline/public/ecu-sim-b.curve.pub", "/etc/keyline/public/ecu-sim-a.curve.pub",
             "injector-b2: config ecu.curve_public_key_file"),
            ("ECU sim admits the other plant's injector", "ecu-sim-a",
             "/etc/keyline/public/injector-a2.curve.pub", "/etc/keyline/public/injector-b2.curve.pub",
             "ecu-sim-a: config client entries"),
            ("relative path in a config", "kms",
             "/run/keyline/secrets/kms-curve-secret", "kms-curve-secret",
             "kms: config kms.curve_key_file = kms-curve-secret: use absolute paths"),
            ("KMS admits another admin key", "kms",
             "/etc/keyline/public/admin.curve.pub", "/etc/keyline/public/pks-a.curve.pub",
             "kms: config kms.admin_key_files"),
            ("KMS does not listen where the plants dial", "kms",
             "tcp://0.0.0.0:7100", "tcp://0.0.0.0:7109",
             "pks-a: config kms.connect dials kms:7100, but kms listens on"),
        ]
        cases = list(mutants(text))
        for i, (what, service, original, replacement, expect) in enumerate(config_cases):
            bad = config_mutant(project_dir, tmp, service, i, original, replacement)
            base = yaml.safe_load(text)
            for v in base["services"][service]["volumes"]:
                if isinstance(v, dict) and str(v.get("target", "")).endswith(".toml"):
                    v["source"] = bad
            cases.append((what, yaml.safe_dump(base, sort_keys=False), expect, False))
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
