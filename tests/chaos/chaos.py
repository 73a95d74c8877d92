#!/usr/bin/env python3
"""Chaos test of the whole system, driven by keyline-lab (issue 8).

Every station provisions ECUs continuously while a seeded schedule of faults hits the lab:
SIGKILL and restart of the KMS, a PKS, an injector, an ECU simulator; a plant's WAN link cut
and restored (its relay); a full disk at a plant (a small tmpfs under its PKS, root only).
Then everything is brought back and drained, the verification file is exported, and the
checker proves the invariants of ARCHITECTURE.md from the KMS's export, the OEM-side checker,
each service's state and the injectors' own journals:

  - no key set reserved for two ECUs or shipped to two plants;
  - every ECU an injector reported provisioned is in the verification file exactly once, with
    M4/M5 that the OEM-side checker recomputes from the OEM's own keys;
  - counts conserved per product and plant;
  - no key bytes in any data dir, log or queue (scanned with the OEM's secrets);
  - the audit chain verifies.

The seed and every fault are printed as they happen: `--seed S` replays the same schedule.

  chaos.py --bin BUILD/bin [--workdir DIR] [--duration S] [--seed N] [--keep]
"""

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time


class ChaosFailure(Exception):
    pass


def log(message):
    print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", flush=True)


class Lab:
    """keyline-lab and the other tools, on one lab directory."""

    def __init__(self, bin_dir, workdir):
        self.bin = bin_dir
        self.dir = workdir

    def tool(self, name, *args, check=True, timeout=300, env=None):
        run = subprocess.run([os.path.join(self.bin, name), *args], capture_output=True,
                             text=True, timeout=timeout, env=env)
        if check and run.returncode != 0:
            raise ChaosFailure(f"{name} {' '.join(args)} exited {run.returncode}:\n"
                               f"{run.stdout[-2000:]}{run.stderr[-2000:]}")
        return run

    def lab(self, *args, **kwargs):
        return self.tool("keyline-lab", args[0], "--workdir", self.dir, *args[1:], **kwargs)

    def state(self):
        with open(os.path.join(self.dir, "lab.json")) as f:
            return json.load(f)

    def process(self, name):
        for process in self.state()["processes"]:
            if process["name"] == name:
                return process
        raise ChaosFailure(f"no process {name} in lab.json")

    def keylinectl(self, *args, check=True):
        env = dict(os.environ)
        env.update(self.state()["keylinectl_environment"])
        return self.tool("keylinectl", *args, check=check, env=env)

    def kill(self, name):
        pid = self.process(name)["pid"]
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        # Wait until it is gone, so that a restart never races the dying process's locks.
        for _ in range(200):
            if not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z":
                return
            time.sleep(0.01)

    def restart(self, name):
        self.lab("restart", name)


class Provisioner(threading.Thread):
    """The EOL testers: keyline-lab provision in a loop, every station busy."""

    def __init__(self, lab, batch):
        super().__init__(daemon=True)
        self.lab = lab
        self.batch = batch
        self.stop = threading.Event()
        self.ecus = []  # {"ecu_uid", "plant", "station", "outcome"}
        self.calls = 0
        self.call_errors = 0

    def run(self):
        while not self.stop.is_set():
            run = self.lab.lab("provision", "--ecus", str(self.batch), "--json", check=False,
                               timeout=600)
            self.calls += 1
            lines = [l for l in run.stdout.splitlines() if l.startswith("{")]
            if not lines:
                self.call_errors += 1
                time.sleep(0.2)
                continue
            self.ecus.extend(json.loads(lines[-1])["ecus"])

    def provisioned(self):
        return [e for e in self.ecus if e["outcome"] == "provisioned"]


class DiskFiller:
    """A plant's PKS data dir on a small tmpfs that a fault fills up (root only)."""

    def __init__(self, lab, plant, size_mb):
        self.lab = lab
        self.pks = next(p["pks"] for p in lab.state()["plants"] if p["plant"] == plant)
        self.data_dir = lab.process(self.pks)["data_dir"]
        self.size_mb = size_mb
        self.filler = os.path.join(self.data_dir, "chaos-filler")
        self.mounted = False

    def mount(self):
        self.lab.kill(self.pks)
        aside = self.data_dir + ".disk"
        os.rename(self.data_dir, aside)
        os.mkdir(self.data_dir)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.size_mb}m", "tmpfs",
                        self.data_dir], check=True)
        self.mounted = True
        subprocess.run(["cp", "-a", aside + "/.", self.data_dir], check=True)
        shutil.rmtree(aside)
        self.lab.restart(self.pks)

    def fill(self):
        # Writes until the disk is full; the PKS must refuse cleanly and carry on afterwards.
        with open(self.filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * (1 << 20))
                    f.flush()
            except OSError:
                pass

    def free(self):
        if os.path.exists(self.filler):
            os.remove(self.filler)

    def unmount(self):
        if not self.mounted:
            return
        self.free()
        # The data stays readable for the checks: copy it back onto the real disk.
        aside = self.data_dir + ".tmpfs-copy"
        subprocess.run(["cp", "-a", self.data_dir, aside], check=True)
        subprocess.run(["umount", "-l", self.data_dir], check=False)
        os.rmdir(self.data_dir)
        os.rename(aside, self.data_dir)
        self.mounted = False


def run_faults(lab, rng, duration, disk, stats):
    """The fault schedule: one fault at a time, each followed by recovery."""
    state = lab.state()
    plants = [p["plant"] for p in state["plants"]]
    victims = ["kms"]
    for p in state["plants"]:
        victims += [p["pks"], p["ecu_sim"]] + [s["injector"] for s in p["stations"]]
    kinds = ["kill"] * 6 + ["cut"] * 3 + (["disk"] if disk else [])
    end = time.time() + duration
    while time.time() < end:
        time.sleep(rng.uniform(1.0, 3.0))
        kind = rng.choice(kinds)
        if kind == "kill":
            victim = rng.choice(victims)
            down = rng.uniform(0.2, 2.0)
            log(f"fault: SIGKILL {victim}, restart after {down:.1f} s")
            lab.kill(victim)
            time.sleep(down)
            lab.restart(victim)
        elif kind == "cut":
            plant = rng.choice(plants)
            down = rng.uniform(1.0, 6.0)
            log(f"fault: cut {plant} off from the KMS for {down:.1f} s")
            lab.lab("cut", plant)
            time.sleep(down)
            lab.lab("reconnect", plant)
        else:
            hold = rng.uniform(1.0, 3.0)
            log(f"fault: disk full at {disk.pks} for {hold:.1f} s")
            disk.fill()
            time.sleep(hold)
            disk.free()
        stats[kind] = stats.get(kind, 0) + 1


def wait_for(what, predicate, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise ChaosFailure(f"timed out waiting for {what}")


def drain(lab):
    """Everything running, every plant connected, every queue empty."""
    state = lab.state()
    for process in state["processes"]:
        if not os.path.exists(f"/proc/{process['pid']}"):
            log(f"restarting {process['name']} for the drain")
            lab.restart(process["name"])
    for plant in state["plants"]:
        if plant.get("cut"):
            lab.lab("reconnect", plant["plant"])

    def injectors_drained():
        for p in lab.state()["processes"]:
            if p["role"] != "injector":
                continue
            status = json.loads(lab.tool("keyline-injector", "status", "--config", p["config"], "--json").stdout)
            if status["messages_queued"] != 0:
                return False
        return True

    def plants_drained():
        for p in lab.state()["processes"]:
            if p["role"] != "pks":
                continue
            status = json.loads(lab.tool("keyline-pks", "status", "--config", p["config"], "--json").stdout)
            if status["records_queued"] != 0 or status["open_reservations"] != 0:
                return False
        return True

    wait_for("the injectors' results to reach their PKS", injectors_drained, 120)
    # Reservations whose injector died before reporting burn at their deadline.
    wait_for("every reservation decided and every record delivered", plants_drained, 180)


def check(lab, provisioner, sample_keys, rng):
    problems = []
    state = lab.state()
    product = state["product"]

    # The OEM's own check: signatures, and every M4/M5 recomputed from the OEM's keys.
    export = os.path.join(lab.dir, "verification.jsonl")
    lab.lab("export", timeout=300)
    checked = lab.keylinectl("verification", "check", export, "--oem-secrets",
                             state["oem_secrets"], "--oem-ca", os.path.join(lab.dir, "oem-ca.pem"),
                             check=False)
    if checked.returncode != 0:
        problems.append("keylinectl verification check failed:\n" + checked.stdout + checked.stderr)

    key_set_of, ecu_of, lines_of, certificates_of = {}, {}, {}, {}
    with open(export) as f:
        for line in f:
            entry = json.loads(line)
            uid, key_set = entry["ecu_uid"], entry["key_set_id"]
            key_set_of.setdefault(uid, set()).add(key_set)
            ecu_of.setdefault(key_set, set()).add(uid)
            if "certificate" in entry:
                certificates_of[uid] = certificates_of.get(uid, 0) + 1
            else:
                lines_of[uid] = lines_of.get(uid, 0) + 1
    for uid, sets in key_set_of.items():
        if len(sets) != 1:
            problems.append(f"ECU {uid} has {len(sets)} key sets in the verification file")
    for key_set, uids in ecu_of.items():
        if len(uids) != 1:
            problems.append(f"key set {key_set} went to {len(uids)} ECUs")
    product_status = json.loads(lab.keylinectl("status", "--json").stdout)["products"][0]
    slots = len(product_status["slots"])
    certificate_slots = 1 if "certificate_slot" in product_status else 0
    for uid, count in lines_of.items():
        if count != slots:
            problems.append(f"ECU {uid} has {count} slot lines, expected {slots}")
    for uid in key_set_of:
        if certificates_of.get(uid, 0) != certificate_slots:
            problems.append(f"ECU {uid} has {certificates_of.get(uid, 0)} certificate lines, "
                            f"expected {certificate_slots}")

    reported = provisioner.provisioned()
    for ecu in reported:
        if ecu["ecu_uid"] not in key_set_of:
            problems.append(f"ECU {ecu['ecu_uid']} was reported provisioned at {ecu['station']} "
                            "but is not in the verification file")

    # The injectors' own journals: every ECU they journaled provisioned is in the file.
    journaled = 0
    for p in state["processes"]:
        if p["role"] == "injector":
            status = json.loads(lab.tool("keyline-injector", "status", "--config", p["config"], "--json").stdout)
            journaled += status["provisioned"]
    if journaled != len(key_set_of):
        problems.append(f"the injectors journaled {journaled} ECUs provisioned, the verification "
                        f"file holds {len(key_set_of)}")

    # Counts conserved: imported = KMS stock + shipped, shipped = at the plants (in stock or
    # reserved) + injected + burned; and each plant's PKS agrees with what the KMS knows of it.
    kms = json.loads(lab.keylinectl("status", "--json").stdout)
    for p in kms["products"]:
        if not p["counts_conserved"] or \
                p["imported"] != p["kms_stock"] + p["shipped_in_plants"] + p["injected"] + p["burned"]:
            problems.append(f"KMS counts for {p['product']}: {json.dumps(p)}")
    for plant in kms["plants"]:
        pks_name = next(x["pks"] for x in state["plants"] if x["plant"] == plant["plant"])
        pks = json.loads(lab.tool("keyline-pks", "status", "--config",
                                  lab.process(pks_name)["config"], "--json").stdout)
        stock = next(s for s in pks["products"] if s["product"] == product)
        if stock["in_stock"] + stock["reserved"] != plant["key_sets_at_plant"]:
            problems.append(f"{plant['plant']}: the KMS counts {plant['key_sets_at_plant']} key sets "
                            f"there, the PKS {stock['in_stock']} in stock + {stock['reserved']} reserved")
        if stock["injected"] != plant["injected"] or stock["burned"] != plant["burned"]:
            problems.append(f"{plant['plant']}: PKS injected/burned {stock['injected']}/"
                            f"{stock['burned']}, KMS {plant['injected']}/{plant['burned']}")
    injected_total = sum(plant["injected"] for plant in kms["plants"])
    if injected_total != len(key_set_of):
        problems.append(f"the KMS counts {injected_total} injected, the file has {len(key_set_of)} ECUs")

    problems += scan_for_keys(lab, sample_keys, set(ecu_of), rng)

    audit = lab.keylinectl("audit", "verify", check=False)
    if audit.returncode != 0:
        problems.append("keylinectl audit verify failed:\n" + audit.stdout + audit.stderr)
    return problems, len(key_set_of), len(reported)


def scan_for_keys(lab, sample_keys, injected_sets, rng):
    """No key in clear anywhere: hex (any case) of every OEM key in every file; as raw bytes,
    a sample of `sample_keys` keys of injected key sets and as many of the others (each raw key
    is one pass over every file: the slow part)."""
    keys = {}
    with open(lab.state()["oem_secrets"]) as f:
        for line in f:
            entry = json.loads(line)
            for slot in entry["slots"]:
                keys[slot["key"].lower()] = entry["key_set_id"]
    injected = sorted(k for k, ks in keys.items() if ks in injected_sets)
    others = sorted(k for k, ks in keys.items() if ks not in injected_sets)
    raw = [bytes.fromhex(k) for k in rng.sample(injected, min(sample_keys, len(injected)))]
    raw += [bytes.fromhex(k) for k in rng.sample(others, min(sample_keys, len(others)))]
    skip = {os.path.realpath(lab.state()["oem_secrets"])}
    oem_dir = os.path.realpath(os.path.join(lab.dir, "oem"))
    hex_run = re.compile(rb"[0-9a-fA-F]{32,}")
    problems, files, scanned = [], 0, 0
    for root, _, names in os.walk(lab.dir):
        if os.path.realpath(root).startswith(oem_dir):
            continue  # the OEM's own tooling: its signing key and the (encrypted) batch file
        for name in names:
            path = os.path.join(root, name)
            if os.path.realpath(path) in skip or not os.path.isfile(path):
                continue
            with open(path, "rb") as f:
                data = f.read()
            files += 1
            scanned += len(data)
            for match in hex_run.finditer(data):
                run = match.group().decode().lower()
                for i in range(0, len(run) - 31):
                    if run[i:i + 32] in keys:
                        problems.append(f"key of key set {keys[run[i:i + 32]]} in hex in {path}")
                        break
            for key in raw:
                if data.find(key) >= 0:
                    problems.append(f"a key in clear (raw bytes) in {path}")
                    break
    log(f"key scan: {files} files, {scanned // 1024} KiB, {len(keys)} keys in hex, "
        f"{len(raw)} keys as raw bytes")
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", required=True, help="directory of the keyline binaries")
    parser.add_argument("--workdir", help="the lab's directory (default: a new temporary one)")
    parser.add_argument("--duration", type=float, default=60, help="seconds of faults")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--key-sets", type=int, default=2000)
    parser.add_argument("--stations", type=int, default=2)
    parser.add_argument("--sample-keys", type=int, default=300,
                        help="keys of injected key sets, and as many others, scanned for as raw bytes")
    parser.add_argument("--keep", action="store_true", help="leave the lab directory")
    args = parser.parse_args()

    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 32)
    log(f"seed {seed} (replay: --seed {seed} --duration {args.duration:g})")
    rng = random.Random(seed)
    workdir = args.workdir or tempfile.mkdtemp(prefix="keyline-chaos-")
    lab = Lab(args.bin, workdir)
    disk = None
    provisioner = None
    stats = {}
    started = time.time()
    ok = False
    try:
        log(f"lab in {workdir}")
        lab.lab("up", "--plants", "2", "--stations", str(args.stations), "--key-sets",
                str(args.key_sets), timeout=300)
        if os.geteuid() == 0:
            # Room for the plant's growing database (RocksDB keeps up to 256 MiB of WAL) in a
            # long run; a fault fills whatever is left.
            disk = DiskFiller(lab, "plant-b", 512)
            disk.mount()
            log(f"{disk.pks}'s data dir is on a 512 MiB tmpfs (full-disk faults on)")
        else:
            log("not root: no full-disk faults")
        provisioner = Provisioner(lab, batch=2 * args.stations)
        provisioner.start()
        run_faults(lab, rng, args.duration, disk, stats)
        provisioner.stop.set()
        provisioner.join()
        log(f"faults injected: {stats}; provisioning calls {provisioner.calls}, "
            f"ECUs asked {len(provisioner.ecus)}, reported provisioned {len(provisioner.provisioned())}")
        drain(lab)
        problems, ecus_in_file, reported = check(lab, provisioner, args.sample_keys, rng)
        outcomes = {}
        for ecu in provisioner.ecus:
            outcomes[ecu["outcome"]] = outcomes.get(ecu["outcome"], 0) + 1
        log(f"outcomes at the testers: {outcomes}")
        log(f"ECUs in the verification file: {ecus_in_file}; reported provisioned: {reported}")
        if problems:
            for problem in problems:
                log(f"VIOLATION: {problem}")
            log(f"{len(problems)} violations (seed {seed})")
        else:
            log(f"0 violations in {time.time() - started:.0f} s (seed {seed})")
            ok = True
    except (ChaosFailure, OSError, subprocess.SubprocessError) as failure:
        log(f"FAILED: {failure} (seed {seed})")
    finally:
        if provisioner:
            provisioner.stop.set()
        try:
            lab.lab("down", check=False)
        except (OSError, subprocess.SubprocessError) as error:
            log(f"keyline-lab down: {error}")
        if disk:
            disk.unmount()
        if ok and not args.keep and not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"lab directory kept: {workdir}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
