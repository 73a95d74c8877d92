#!/usr/bin/env python3
"""Runs docker-compose.yml's lab without a Docker engine, on Linux namespaces, and provisions ECUs.

    rehearse_lab.py --bin-dir BUILD/bin COMPOSE_FILE [--keep]

There is no Docker engine on the machines this project is built on, so `docker-compose up` is
never run here. This rehearsal takes the normalised `docker-compose config` model and does
what the engine would do with it, as far as the lab depends on it:
- networks: one bridge per compose network (in a private network namespace) and one network
  namespace per service, attached to exactly its networks; /etc/hosts resolves the services
  on a shared network, like Docker's DNS;
- each start is a new mount and PID namespace: a read-only root, tmpfs mounts as listed,
  /run/secrets/<name> bind-mounted read-only from the host files (owned by another user, mode
  0600, as make-secrets leaves them), configs and public keys bind-mounted read-only, the named
  volume at /var/lib/keyline (owner keyline, as a new volume takes it from the image), the
  image's keyline user, the binaries and keyline-entrypoint in /usr/local/bin;
- the process starts as root with only the service's cap_add (the bounding set) and
  no-new-privileges, entrypoint + command as given; health checks run in its namespaces the
  same way; depends_on conditions are waited for; setup runs to completion.
Then it checks what a user of the compose lab relies on: every service becomes healthy, runs
as keyline with no capabilities, plants receive stock, each station provisions an ECU through
`keyline-injector provision`, `setup` runs again while everything runs, the KMS and a PKS
restart (fresh tmpfs, same volumes) and provisioning goes on, keylinectl works as
`docker-compose run --rm setup keylinectl ...` would run it, and the OEM's verification file
is exported and checked against the OEM's secrets.

What it cannot show: the image build (Dockerfile), Docker's own handling of the file (secrets,
tmpfs options, restart policies, health check timing) and the engine's DNS. Needs root,
util-linux (unshare, nsenter, setpriv), iproute2 and overlayfs.
"""

import argparse
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import yaml

SERVICE_UID = 10001
HOST_UID = 1000            # the owner make-secrets' files get here: "a developer's account"
# Network namespaces are global names: one set per run, so runs in parallel do not meet.
NETNS_PREFIX = f"klr{os.getpid()}-"
IMAGE_BINARIES = ["keyline-kms", "keyline-pks", "keyline-injector", "keyline-ecu-sim", "keylinectl"]
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def run(argv, check=True, **kw):
    return subprocess.run(argv, check=check, capture_output=True, text=True, **kw)


class Failure(Exception):
    pass


class Rehearsal:
    def __init__(self, compose_file, bin_dir, work):
        self.compose_file = os.path.abspath(compose_file)
        self.project = os.path.dirname(self.compose_file)
        self.bin_dir = os.path.abspath(bin_dir)
        self.work = work
        self.model = yaml.safe_load(run(["docker-compose", "-f", self.compose_file, "config"],
                                        env=dict(os.environ, COMPOSE_PROJECT_NAME="rehearsal")).stdout)
        self.services = self.model["services"]
        self.procs = {}          # service -> Popen of its unshare
        self.netns = []
        self.addresses = {}      # (service, network) -> address
        self.log_dir = os.path.join(work, "logs")
        os.makedirs(self.log_dir)

    # ---- the engine's part -------------------------------------------------------------------

    def make_secrets(self):
        out = os.path.join(self.work, "secrets")
        proc = run([os.path.join(self.project, "deploy", "compose", "make-secrets"), "--out", out],
                   check=False, env=dict(os.environ, KEYLINECTL=os.path.join(self.bin_dir, "keylinectl")))
        if proc.returncode != 0:
            raise Failure(f"make-secrets failed: {proc.stderr}")
        # Compose bind-mounts a secret with its host owner and mode: a developer's files.
        for root, dirs, files in os.walk(out):
            for name in dirs + files:
                os.chown(os.path.join(root, name), HOST_UID, HOST_UID)
        os.chown(out, HOST_UID, HOST_UID)
        # The model names the files under ./deploy/compose/secrets/: the rehearsal's copy instead.
        self.secret_dir = out

    def host_path(self, path):
        """A bind source of the model, with ./deploy/compose/secrets/ moved to the rehearsal's."""
        real = os.path.join(self.project, "deploy", "compose", "secrets")
        if path == real or path.startswith(real + os.sep):
            return self.secret_dir + path[len(real):]
        return path

    def build_networks(self):
        hub = NETNS_PREFIX + "hub"
        self.add_netns(hub)
        names = sorted(self.model.get("networks") or {})
        for n, net in enumerate(names):
            run(["ip", "-n", hub, "link", "add", f"br{n}", "type", "bridge"])
            run(["ip", "-n", hub, "link", "set", f"br{n}", "up"])
        k = 0
        for s, (name, svc) in enumerate(sorted(self.services.items())):
            ns = NETNS_PREFIX + name
            self.add_netns(ns)
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
            for i, net in enumerate(sorted(svc.get("networks") or {})):
                n = names.index(net)
                address = f"10.77.{n}.{10 + s}"
                run(["ip", "-n", hub, "link", "add", f"hv{k}", "type", "veth", "peer", "name",
                     f"eth{i}", "netns", ns])
                run(["ip", "-n", hub, "link", "set", f"hv{k}", "master", f"br{n}", "up"])
                run(["ip", "-n", ns, "addr", "add", f"{address}/24", "dev", f"eth{i}"])
                run(["ip", "-n", ns, "link", "set", f"eth{i}", "up"])
                self.addresses[(name, net)] = address
                k += 1

    def add_netns(self, name):
        run(["ip", "netns", "add", name])
        self.netns.append(name)

    def hosts_file(self, name):
        lines = ["127.0.0.1\tlocalhost"]
        mine = set(self.services[name].get("networks") or {})
        for other, svc in sorted(self.services.items()):
            for net in sorted(mine & set(svc.get("networks") or {})):
                lines.append(f"{self.addresses[(other, net)]}\t{other}")
                break
        return "\n".join(lines) + "\n"

    def environment(self, svc):
        env = {"PATH": PATH, "HOME": "/root"}
        env.update({k: str(v) for k, v in (svc.get("environment") or {}).items()})
        return env

    def capabilities(self, svc):
        return ",".join(["-all"] + ["+" + c.lower() for c in svc.get("cap_add") or []])

    def exec_prefix(self, svc):
        """How the engine starts a process in the container: root, cap_add only, no new privs."""
        env = [f"{k}={v}" for k, v in sorted(self.environment(svc).items())]
        prefix = ["setpriv", f"--bounding-set={self.capabilities(svc)}"]
        if "no-new-privileges:true" in (svc.get("security_opt") or []):
            prefix.append("--no-new-privs")
        return prefix + ["--", "env", "-i"] + env

    def mount_script(self, name, svc):
        """Shell lines run as root in the new mount namespace before the entrypoint."""
        root = os.path.join(self.work, "roots", name)
        shutil.rmtree(root, ignore_errors=True)
        for d in ("etc-up", "etc-work"):
            os.makedirs(os.path.join(root, d))
        with open(os.path.join(root, "hosts"), "w") as f:
            f.write(self.hosts_file(name))
        q = shlex.quote
        lines = [
            "set -eu",
            "mount --make-rprivate /",
            # /etc: an overlay, so the image's user and the mount points never touch the host.
            f"mount -t overlay overlay -o lowerdir=/etc,upperdir={q(root)}/etc-up,"
            f"workdir={q(root)}/etc-work /etc",
            f"echo 'keyline:x:{SERVICE_UID}:{SERVICE_UID}::/var/lib/keyline:/usr/sbin/nologin' >>/etc/passwd",
            f"echo 'keyline:x:{SERVICE_UID}:' >>/etc/group",
            f"cp {q(os.path.join(root, 'hosts'))} /etc/hosts",
            "mkdir -p /etc/keyline",
            "mount -t tmpfs -o mode=0755 tmpfs /run",
            "mkdir -p /run/secrets",
            "mount -t tmpfs -o mode=0755 tmpfs /var/lib",
            "mkdir -p /var/lib/keyline",
            "mount -t tmpfs -o mode=0755 tmpfs /usr/local/bin",
        ]
        for binary in IMAGE_BINARIES:
            lines += [f"touch /usr/local/bin/{binary}",
                      f"mount --bind {q(os.path.join(self.bin_dir, binary))} /usr/local/bin/{binary}"]
        entrypoint = os.path.join(self.project, "deploy", "image", "keyline-entrypoint")
        lines += [f"install -m 0755 {q(entrypoint)} /usr/local/bin/keyline-entrypoint",
                  "mount -o remount,ro /usr/local/bin"]
        for entry in svc.get("secrets") or []:
            secret = entry["source"] if isinstance(entry, dict) else entry
            source = self.host_path(self.model["secrets"][secret]["file"])
            target = f"/run/secrets/{secret}"
            lines += [f"touch {target}", f"mount --bind {q(source)} {target}",
                      f"mount -o remount,bind,ro {target}"]
        for v in svc.get("volumes") or []:
            target = v["target"]
            if v["type"] == "volume":
                source = os.path.join(self.work, "volumes", v["source"])
                if not os.path.isdir(source):
                    os.makedirs(source)
                    os.chown(source, SERVICE_UID, SERVICE_UID)
                    os.chmod(source, 0o750)
            else:
                source = self.host_path(v["source"])
            make = "mkdir -p" if os.path.isdir(source) else f"mkdir -p $(dirname {q(target)}) && touch"
            lines += [f"{make} {q(target)}", f"mount --bind {q(source)} {q(target)}"]
            if v.get("read_only"):
                lines.append(f"mount -o remount,bind,ro {q(target)}")
        # Last: a tmpfs over /tmp would hide bind sources under it.
        for entry in svc.get("tmpfs") or []:
            path, _, options = str(entry).partition(":")
            lines += [f"mkdir -p {q(path)}",
                      f"mount -t tmpfs -o {q(options or 'mode=1777')} tmpfs {q(path)}"]
        if svc.get("read_only"):
            lines += ["mount -o remount,bind,ro /", "mount -o remount,ro /etc"]
        return "\n".join(lines)

    def start(self, name, command=None, log_name=None):
        svc = self.services[name]
        argv = list(svc.get("entrypoint") or []) + list(command or svc.get("command") or [])
        script = self.mount_script(name, svc) + "\ncd /var/lib/keyline\nexec " + \
            " ".join(shlex.quote(a) for a in self.exec_prefix(svc) + argv)
        log = open(os.path.join(self.log_dir, (log_name or name) + ".log"), "a")
        log.write(f"---- start {time.strftime('%H:%M:%S')}: {' '.join(argv)}\n")
        log.flush()
        proc = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{NETNS_PREFIX}{name}", "unshare", "--mount", "--pid",
             "--fork", "--mount-proc", "--", "sh", "-c", script],
            stdout=log, stderr=subprocess.STDOUT)
        if log_name is None:
            self.procs[name] = proc
        return proc

    def service_pid(self, name):
        """The host pid of the service's process (PID 1 of its namespace)."""
        unshare = self.procs[name].pid
        for _ in range(100):
            try:
                with open(f"/proc/{unshare}/task/{unshare}/children") as f:
                    children = f.read().split()
                if children:
                    return int(children[0])
            except FileNotFoundError:
                pass
            time.sleep(0.05)
        raise Failure(f"{name}: no process (see {self.log_dir}/{name}.log)")

    def exec_in(self, name, argv, timeout=60):
        """docker-compose exec: the service's namespaces, root with its capabilities."""
        svc = self.services[name]
        return run(["nsenter", "-t", str(self.service_pid(name)), "-m", "-p", "-n",
                    "--wdns=/var/lib/keyline", "--"] + self.exec_prefix(svc) + argv,
                   check=False, timeout=timeout)

    def health(self, name):
        test = list(self.services[name]["healthcheck"]["test"])
        return self.exec_in(name, test[1:] if test[0] in ("CMD", "CMD-SHELL") else test)

    def wait_healthy(self, name, timeout=90):
        deadline = time.time() + timeout
        while True:
            if self.procs[name].poll() is not None:
                raise Failure(f"{name} exited ({self.procs[name].returncode}) before it became "
                              f"healthy; see {self.log_dir}/{name}.log")
            result = self.health(name)
            if result.returncode == 0:
                return
            if time.time() > deadline:
                raise Failure(f"{name} not healthy after {timeout} s: {result.stdout}{result.stderr}")
            time.sleep(0.5)

    def wait_completed(self, name, proc, timeout=180):
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise Failure(f"{name} did not finish within {timeout} s") from None
        if code != 0:
            raise Failure(f"{name} exited {code}; see {self.log_dir}/{name}.log")

    def up(self):
        """Starts every service once its dependencies are met, in a dependency order."""
        started = []
        remaining = dict(self.services)
        while remaining:
            ready = [n for n, s in sorted(remaining.items())
                     if set(s.get("depends_on") or {}) <= set(started)]
            if not ready:
                raise Failure(f"depends_on cycle among {sorted(remaining)}")
            for name in ready:
                for dep, how in (self.services[name].get("depends_on") or {}).items():
                    if how["condition"] == "service_healthy":
                        self.wait_healthy(dep)
                    elif how["condition"] == "service_completed_successfully":
                        self.wait_completed(dep, self.procs[dep])
                print(f"  start {name}")
                self.start(name)
                started.append(name)
                del remaining[name]
        for name, svc in sorted(self.services.items()):
            if svc.get("healthcheck"):
                self.wait_healthy(name)
                print(f"  {name} healthy")
            else:
                self.wait_completed(name, self.procs[name])
                print(f"  {name} completed")

    def stop(self, name, timeout=30):
        """docker stop: SIGTERM to the service, wait until it has exited, then SIGKILL."""
        proc = self.procs.get(name)
        if proc is None or proc.poll() is not None:
            return
        # Straight to the service: unshare's --kill-child is lost when the entrypoint changes
        # user (the kernel clears the parent-death signal then).
        pid = self.service_pid(name)
        os.kill(pid, signal.SIGTERM)
        deadline = time.time() + timeout
        while os.path.exists(f"/proc/{pid}") and time.time() < deadline:
            time.sleep(0.05)
        if os.path.exists(f"/proc/{pid}"):
            os.kill(pid, signal.SIGKILL)
        proc.wait()

    def teardown(self):
        for name in list(self.procs):
            try:
                self.stop(name, timeout=10)
            except Failure as e:
                print(f"teardown: {e}")
        for ns in reversed(self.netns):
            run(["ip", "netns", "del", ns], check=False)

    # ---- what the lab's user relies on ------------------------------------------------------

    def check_privileges(self):
        for name, svc in sorted(self.services.items()):
            if not svc.get("healthcheck"):
                continue
            with open(f"/proc/{self.service_pid(name)}/status") as f:
                status = dict(line.split(":", 1) for line in f if ":" in line)
            uids = status["Uid"].split()
            if uids != [str(SERVICE_UID)] * 4 or int(status["CapEff"], 16) or \
                    int(status["CapPrm"], 16) or int(status["NoNewPrivs"]) != 1:
                raise Failure(f"{name}: runs with Uid {uids}, CapEff {status['CapEff'].strip()}, "
                              f"CapPrm {status['CapPrm'].strip()}, NoNewPrivs "
                              f"{status['NoNewPrivs'].strip()}")
            copies = self.exec_in(name, ["stat", "-c", "%U %a %n", "/run/keyline/secrets",
                                         *[f"/run/keyline/secrets/{s['source']}"
                                           for s in svc.get("secrets") or []]])
            for line in copies.stdout.splitlines():
                owner, mode, path = line.split(" ", 2)
                want = "500" if path == "/run/keyline/secrets" else "400"
                if owner != "keyline" or mode != want:
                    raise Failure(f"{name}: {path} is {owner} {mode}, expected keyline {want}")
        print("  every service runs as keyline (uid 10001) without capabilities; secrets copied "
              "0400")

    def pks_stock(self, pks, product):
        result = self.exec_in(pks, ["keyline-entrypoint", "keyline-pks", "status", "--config",
                                    "/etc/keyline/pks.toml", "--json"])
        if result.returncode != 0:
            return 0
        for p in json.loads(result.stdout)["products"]:
            if p["product"] == product:
                return p["in_stock"]
        return 0

    def wait_for_stock(self, product, minimum, timeout=90):
        for pks in sorted(n for n in self.services if n.startswith("pks-")):
            deadline = time.time() + timeout
            while self.pks_stock(pks, product) < minimum:
                if time.time() > deadline:
                    raise Failure(f"{pks}: less than {minimum} key sets of {product} after "
                                  f"{timeout} s; see {self.log_dir}/{pks}.log and kms.log")
                time.sleep(0.5)
            print(f"  {pks} holds stock of {product}")

    def provision(self, injector, product):
        uid = secrets.token_hex(15)
        result = self.exec_in(injector, ["keyline-entrypoint", "keyline-injector", "provision",
                                         "--config", "/etc/keyline/injector.toml", "--uid", uid,
                                         "--product", product, "--json"])
        try:
            outcome = json.loads(result.stdout)
        except json.JSONDecodeError:
            raise Failure(f"{injector}: provision printed no JSON: {result.stdout}{result.stderr}") from None
        if result.returncode != 0 or outcome.get("outcome") != "provisioned":
            raise Failure(f"{injector}: ECU {uid}: {outcome.get('outcome')}: {outcome.get('message')}")
        print(f"  {injector}: ECU {uid} provisioned ({outcome['message']})")

    def run_setup_again(self):
        """`docker-compose up` again: setup runs once more, with the lab running."""
        proc = self.start("setup", log_name="setup-again")
        self.wait_completed("setup (run again)", proc)
        print("  setup ran again while the lab runs: exit 0")

    def admin(self, *args):
        """`docker-compose run --rm setup keylinectl ...`."""
        proc = self.start("setup", command=["keylinectl", *args], log_name="setup-run")
        self.wait_completed("docker-compose run setup keylinectl " + " ".join(args), proc)
        with open(os.path.join(self.log_dir, "setup-run.log")) as f:
            return f.read().rsplit("---- start", 1)[-1]

    def admin_json(self, *args):
        text = self.admin(*args, "--json")
        lines = [line for line in text.splitlines() if line.startswith("{")]
        if not lines:
            raise Failure(f"keylinectl {' '.join(args)} printed no JSON: {text}")
        return json.loads(lines[-1])

    def verify(self, oem, ecus):
        """The OEM's proof, as deploy/compose/README.md tells it: request, export, check."""
        opened = self.admin_json("verification", "request", "--oem", oem)
        vid = opened["verification_id"]
        deadline = time.time() + 60
        while not self.admin_json("verification", "status", vid)["complete"]:
            if time.time() > deadline:
                raise Failure(f"verification {vid} incomplete after 60 s")
            time.sleep(1)
        out = f"/var/lib/keyline/verification-{vid}.jsonl"
        self.admin("verification", "export", vid, "--out", out)
        check = self.admin_json("verification", "check", out, "--oem-secrets",
                                "/var/lib/keyline/oem-secrets.jsonl", "--oem-ca",
                                "/var/lib/keyline/oem-ca/oem-ca.pem")
        if not check["ok"] or check["ecus"] != ecus or check["certificates_valid"] != ecus:
            raise Failure(f"verification check: {check}")
        print(f"  verification {vid}: {check['lines']} lines, {check['ecus']} ECUs, every proof "
              "matches the OEM's keys, every ECU certificate chains to the OEM CA")

    def issue_plant_cas(self, oem, plants):
        """Each plant's issuing CA, as deploy/compose/README.md tells it."""
        for plant in plants:
            issued = self.admin_json("plant", "ca", "issue", "--plant", plant, "--oem", oem,
                                     "--oem-ca", "/var/lib/keyline/oem-ca")
            if issued.get("state") != "active":
                raise Failure(f"plant ca issue {plant}: {issued}")
        status = self.admin_json("status")
        for entry in status["plants"]:
            states = [ca["state"] for ca in entry.get("issuing_cas", [])]
            if states != ["active"]:
                raise Failure(f"{entry['plant']}: issuing CAs {states} after plant ca issue")
        print(f"  plant ca issue: {', '.join(plants)} hold an active issuing CA of {oem}")

    def wait_for_budgets(self, oem, plants):
        """Each plant asks the KMS for its issuing budget once its CA arrives; one plant gets a
        policy of its own through `keylinectl plant ca budget`."""
        policy = self.admin_json("plant", "ca", "budget", "--plant", plants[0], "--oem", oem,
                                 "--min", "100", "--target", "400")
        if policy.get("target") != 400:
            raise Failure(f"plant ca budget: {policy}")
        deadline = time.time() + 60
        while True:
            status = self.admin_json("status")
            ready = {entry["plant"] for entry in status["plants"]
                     for budget in entry.get("certificate_budgets", [])
                     if budget["oem"] == oem and budget.get("at_plant", {}).get("available", 0) > 0}
            if all(plant in ready for plant in plants):
                break
            if time.time() > deadline:
                raise Failure(f"no issuing budget at {sorted(set(plants) - ready)} after 60 s: {status}")
            time.sleep(0.5)
        print(f"  issuing budgets: {', '.join(plants)} may issue certificates of {oem} "
              f"({plants[0]}: min 100, target 400)")

    def restart(self, name):
        self.stop(name)
        self.start(name)
        self.wait_healthy(name)
        print(f"  {name} restarted (fresh tmpfs, same volume) and healthy")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("compose_file")
    parser.add_argument("--bin-dir", required=True)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("FAIL: the rehearsal needs root (namespaces, mounts, network namespaces)")
        return 1
    # Not under /tmp, /run or /var/lib: the services get their own mounts there.
    work = tempfile.mkdtemp(prefix="keyline-rehearsal-", dir="/var/tmp")
    os.chmod(work, 0o755)
    lab = Rehearsal(args.compose_file, args.bin_dir, work)
    product = lab.services["setup"]["environment"]["LAB_PRODUCT"]
    minimum = int(lab.services["setup"]["environment"]["LAB_MIN_STOCK"])
    injectors = sorted(n for n in lab.services if n.startswith("injector-"))
    try:
        print("rehearsal: make-secrets, networks")
        lab.make_secrets()
        lab.build_networks()
        print("rehearsal: up")
        lab.up()
        lab.check_privileges()
        lab.wait_for_stock(product, minimum)
        # The product has a certificate slot: each plant needs its issuing CA before an ECU.
        lab.issue_plant_cas(lab.services["setup"]["environment"]["LAB_OEM"], ["plant-a", "plant-b"])
        lab.wait_for_budgets(lab.services["setup"]["environment"]["LAB_OEM"], ["plant-a", "plant-b"])
        for injector in injectors:
            lab.provision(injector, product)
        lab.run_setup_again()
        lab.restart("kms")
        lab.restart("pks-a")
        lab.wait_for_stock(product, 1)
        lab.provision("injector-a1", product)
        status = lab.admin("status")
        if "plant-a" not in status or "plant-b" not in status:
            raise Failure(f"keylinectl status through setup does not list the plants: {status}")
        print("  docker-compose run --rm setup keylinectl status: answers, lists both plants")
        lab.verify(lab.services["setup"]["environment"]["LAB_OEM"], len(injectors) + 1)
        print("ok: the compose lab came up, provisioned ECUs at every station, survived setup "
              "again and restarts")
        return 0
    except (Failure, subprocess.CalledProcessError) as e:
        detail = e.stderr if isinstance(e, subprocess.CalledProcessError) else ""
        print(f"FAIL: {e} {detail or ''}")
        print(f"logs: {lab.log_dir}")
        return 1
    finally:
        lab.teardown()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"work directory kept: {work}")


if __name__ == "__main__":
    sys.exit(main())
