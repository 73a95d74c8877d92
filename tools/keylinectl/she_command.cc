// keylinectl she: the engineer's SHE calculator.
//
//   keylinectl she compute --auth-key HEX --new-key HEX --uid HEX --id N --auth-id N
//                          --counter N [--flags N] [--allow-wildcard] [--json]
//   keylinectl she check --new-key HEX --m4 HEX --m5 HEX [--json]
//
// Keys are parsed by hsm-adapter straight into guarded memory; this file never holds them.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <memory>
#include <ostream>
#include <string>

#include "cli_values.h"
#include "command.h"
#include "keyline/common/hex.h"
#include "keyline/hsm/key_custody.h"
#include "keyline/hsm/software_custody.h"

namespace keyline::keylinectl {
namespace {

using hsm::KeyCustody;
using hsm::KeyHandle;
using hsm::KeyKind;

int ExitCodeFor(const Status& status) {
  switch (status.code()) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kOutOfRange:
      return kExitUsage;
    default:
      return kExitFailed;
  }
}

struct ComputeArgs {
  std::string auth_key, new_key, uid, id, auth_id, counter, flags = "0";
  bool allow_wildcard = false;
  bool json = false;
};

struct CheckArgs {
  std::string new_key, m4, m5;
  bool json = false;
};

Status RunCompute(const ComputeArgs& args, std::ostream& out) {
  // Public inputs first, so that a typo in --uid is reported before any key is touched.
  hsm::SheLoadRequest request;
  ASSIGN_OR_RETURN(std::vector<uint8_t> uid, ParseHex(args.uid, "--uid", 15));
  std::copy(uid.begin(), uid.end(), request.fields.uid.begin());
  ASSIGN_OR_RETURN(uint32_t id, ParseNumber(args.id, "--id", hsm::kSheMaxSlot));
  ASSIGN_OR_RETURN(uint32_t auth_id, ParseNumber(args.auth_id, "--auth-id", hsm::kSheMaxSlot));
  ASSIGN_OR_RETURN(request.fields.counter,
                   ParseNumber(args.counter, "--counter", hsm::kSheMaxCounter));
  ASSIGN_OR_RETURN(uint32_t flags, ParseNumber(args.flags, "--flags", hsm::kSheMaxFlags));
  request.fields.slot = static_cast<uint8_t>(id);
  request.fields.auth_slot = static_cast<uint8_t>(auth_id);
  request.fields.allow_wildcard_uid = args.allow_wildcard;
  request.flags = static_cast<uint8_t>(flags);
  if (hsm::IsWildcardUid(request.fields.uid) && !args.allow_wildcard) {
    return InvalidArgumentError(
        "--uid: the all-zero UID is the wildcard; add --allow-wildcard to compute it");
  }

  ASSIGN_OR_RETURN(std::unique_ptr<KeyCustody> custody, hsm::CreateSoftwareCustody({}));
  ASSIGN_OR_RETURN(request.auth_key,
                   custody->ImportKeyFromHex(KeyKind::kAes128, args.auth_key, "--auth-key"));
  ASSIGN_OR_RETURN(request.new_key,
                   custody->ImportKeyFromHex(KeyKind::kAes128, args.new_key, "--new-key"));
  ASSIGN_OR_RETURN(hsm::SheLoadMessages m, custody->ComputeSheLoad(request));
  ASSIGN_OR_RETURN(hsm::SheProof proof, custody->ComputeSheProof(request.new_key, request.fields));

  if (args.json) {
    nlohmann::json j = {{"m1", ToHex(m.m1)},    {"m2", ToHex(m.m2)},    {"m3", ToHex(m.m3)},
                        {"m4", ToHex(proof.m4)}, {"m5", ToHex(proof.m5)}};
    out << j.dump() << '\n';
  } else {
    out << "M1 = " << ToHex(m.m1) << '\n'
        << "M2 = " << ToHex(m.m2) << '\n'
        << "M3 = " << ToHex(m.m3) << '\n'
        << "M4 = " << ToHex(proof.m4) << '\n'
        << "M5 = " << ToHex(proof.m5) << '\n';
  }
  return Status::Ok();
}

StatusOr<bool> RunCheck(const CheckArgs& args, std::ostream& out) {
  hsm::SheProof proof;
  ASSIGN_OR_RETURN(std::vector<uint8_t> m4, ParseHex(args.m4, "--m4", 32));
  ASSIGN_OR_RETURN(std::vector<uint8_t> m5, ParseHex(args.m5, "--m5", 16));
  std::copy(m4.begin(), m4.end(), proof.m4.begin());
  std::copy(m5.begin(), m5.end(), proof.m5.begin());

  ASSIGN_OR_RETURN(std::unique_ptr<KeyCustody> custody, hsm::CreateSoftwareCustody({}));
  ASSIGN_OR_RETURN(KeyHandle key,
                   custody->ImportKeyFromHex(KeyKind::kAes128, args.new_key, "--new-key"));
  ASSIGN_OR_RETURN(hsm::SheProofCheck check, custody->CheckSheProof(key, proof));

  if (args.json) {
    nlohmann::json j = {{"valid", check.valid},
                        {"uid", ToHex(check.uid)},
                        {"id", check.slot},
                        {"auth_id", check.auth_slot}};
    if (check.valid) j["counter"] = check.counter;
    out << j.dump() << '\n';
  } else {
    if (check.valid) {
      out << "valid: M4/M5 prove that the ECU holds this key\n";
    } else {
      out << "INVALID: M5 does not authenticate M4 under this key (wrong key or corrupted proof)\n";
    }
    // UID, ID and AuthID travel in clear in M4; the counter is only known from a valid proof.
    out << "UID = " << ToHex(check.uid) << '\n'
        << "ID = " << int{check.slot} << " (" << hsm::SheSlotName(check.slot) << ")\n"
        << "AuthID = " << int{check.auth_slot} << " (" << hsm::SheSlotName(check.auth_slot)
        << ")\n"
        << "Counter = " << (check.valid ? std::to_string(check.counter) : "unknown") << '\n';
  }
  return check.valid;
}

}  // namespace

void RegisterSheCommands(CLI::App& root, CommandContext& context) {
  CLI::App* she = root.add_subcommand("she", "SHE memory update protocol calculator (M1..M5)");
  she->require_subcommand(1);

  auto compute_args = std::make_shared<ComputeArgs>();
  CLI::App* compute =
      she->add_subcommand("compute", "compute M1..M3 and the expected M4/M5 for a key load");
  compute->add_option("--auth-key", compute_args->auth_key, "authorising key, 32 hex digits")
      ->required();
  compute->add_option("--new-key", compute_args->new_key, "key to load, 32 hex digits")->required();
  compute->add_option("--uid", compute_args->uid, "ECU UID, 30 hex digits")->required();
  compute->add_option("--id", compute_args->id, "slot ID being written, 0..15")->required();
  compute->add_option("--auth-id", compute_args->auth_id, "authorising slot ID, 0..15")->required();
  compute->add_option("--counter", compute_args->counter, "new counter, 0..268435455")->required();
  compute->add_option("--flags", compute_args->flags,
                      "flag bits 0..31: 16 WRITE_PROT, 8 BOOT_PROT, 4 DEBUGGER_PROT, 2 KEY_USAGE, "
                      "1 WILDCARD (default 0)");
  compute->add_flag("--allow-wildcard", compute_args->allow_wildcard,
                    "allow the all-zero wildcard UID");
  compute->add_flag("--json", compute_args->json, "print JSON");
  compute->callback([compute_args, &context] {
    Status status = RunCompute(*compute_args, *context.out);
    if (!status.ok()) context.Fail(ExitCodeFor(status), status.message());
  });

  auto check_args = std::make_shared<CheckArgs>();
  CLI::App* check =
      she->add_subcommand("check", "check whether M4/M5 prove that an ECU holds a key");
  check->add_option("--new-key", check_args->new_key, "the loaded key, 32 hex digits")->required();
  check->add_option("--m4", check_args->m4, "M4, 64 hex digits")->required();
  check->add_option("--m5", check_args->m5, "M5, 32 hex digits")->required();
  check->add_flag("--json", check_args->json, "print JSON");
  check->callback([check_args, &context] {
    StatusOr<bool> valid = RunCheck(*check_args, *context.out);
    if (!valid.ok()) {
      context.Fail(ExitCodeFor(valid.status()), valid.status().message());
    } else if (!*valid) {
      context.exit_code = kExitFailed;
    }
  });
}

}  // namespace keyline::keylinectl
