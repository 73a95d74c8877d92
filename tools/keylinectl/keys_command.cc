// keylinectl keys generate: the key files a deployment needs before anything runs (the compose
// lab's deploy/compose/make-secrets calls these).
//
//   keylinectl keys generate curve --secret-out FILE [--public-out FILE]   Curve key pair (0600);
//                                                                           prints its public key
//   keylinectl keys generate hsm-master --out FILE                         software-HSM master key
//   keylinectl keys generate hex --bytes N --out FILE                      N random bytes as hex
//
// Every file is created new (an existing file is never overwritten: a replaced HSM master key
// would make everything wrapped under the old one unreadable) and secret files are mode 0600.
// Key bytes are made and written by broker (Curve) and hsm-adapter; this file never holds them.
#include <CLI/CLI.hpp>

#include <filesystem>
#include <fstream>
#include <memory>
#include <ostream>
#include <string>

#include "command.h"
#include "keyline/broker/curve_keys.h"
#include "keyline/hsm/she_store_seal.h"
#include "keyline/hsm/software_custody.h"

namespace keyline::keylinectl {
namespace {

namespace fs = std::filesystem;

struct GenerateArgs {
  std::string secret_out, public_out, out;
  size_t bytes = 0;
};

// Both checks run before anything is written, so a refused command leaves no half of a pair.
Status RefuseExisting(const std::string& path) {
  std::error_code ec;
  if (fs::exists(fs::symlink_status(path, ec))) {
    return AlreadyExistsError(path + " exists; not overwriting a key file");
  }
  fs::path parent = fs::path(path).parent_path();
  if (!parent.empty() && !fs::is_directory(parent, ec)) {
    return NotFoundError(path + ": directory " + parent.string() + " does not exist");
  }
  return Status::Ok();
}

// "public = <z85>", the form broker::LoadCurvePublicKeyFile reads; public, so mode 0644.
Status WritePublicKeyFile(const std::string& path, const std::string& z85) {
  {
    std::ofstream out(path, std::ios::trunc);
    out << "public = " << z85 << '\n';
    out.close();
    if (!out) return UnavailableError(path + ": cannot write the public key file");
  }
  std::error_code ec;
  fs::permissions(path,
                  fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                      fs::perms::others_read,
                  ec);
  if (ec) return UnavailableError(path + ": cannot set mode 0644: " + ec.message());
  return Status::Ok();
}

Status GenerateCurve(const GenerateArgs& args, std::ostream& out) {
  RETURN_IF_ERROR(RefuseExisting(args.secret_out));
  if (!args.public_out.empty()) {
    if (args.public_out == args.secret_out) {
      return InvalidArgumentError("--public-out must differ from --secret-out");
    }
    RETURN_IF_ERROR(RefuseExisting(args.public_out));
  }
  ASSIGN_OR_RETURN(broker::CurveKeyPair pair, broker::CurveKeyPair::Generate());
  RETURN_IF_ERROR(pair.Save(args.secret_out));
  const std::string z85 = broker::CurvePublicKeyToZ85(pair.public_key());
  if (!args.public_out.empty()) {
    Status written = WritePublicKeyFile(args.public_out, z85);
    if (!written.ok()) {
      // Without its public file the pair cannot be registered anywhere: take it back, so that
      // running the command again starts clean.
      std::error_code ec;
      fs::remove(args.secret_out, ec);
      fs::remove(args.public_out, ec);
      return written;
    }
  }
  out << z85 << '\n';
  return Status::Ok();
}

Status GenerateHsmMaster(const GenerateArgs& args, std::ostream& out) {
  RETURN_IF_ERROR(RefuseExisting(args.out));
  RETURN_IF_ERROR(hsm::CreateMasterKeyFile(args.out, {}));
  out << "wrote " << args.out << " (software HSM master key, mode 0600)\n";
  return Status::Ok();
}

Status GenerateHex(const GenerateArgs& args, std::ostream& out) {
  RETURN_IF_ERROR(RefuseExisting(args.out));
  RETURN_IF_ERROR(hsm::WriteRandomKeyFile(args.out, args.bytes));
  out << "wrote " << args.out << " (" << args.bytes << " random bytes as " << args.bytes * 2
      << " hex digits, mode 0600)\n";
  return Status::Ok();
}

template <typename F>
void RunGenerate(CommandContext& context, F body) {
  Status status = body();
  if (status.ok()) return;
  context.Fail(status.code() == StatusCode::kInvalidArgument ? kExitUsage : kExitFailed,
               status.message());
}

}  // namespace

void RegisterKeysCommands(CLI::App& root, CommandContext& context) {
  CLI::App* keys = root.add_subcommand("keys", "key files for a deployment (never overwritten)");
  keys->require_subcommand(1);
  CLI::App* generate = keys->add_subcommand("generate", "write a new key file");
  generate->require_subcommand(1);
  auto args = std::make_shared<GenerateArgs>();

  CLI::App* curve = generate->add_subcommand(
      "curve", "a CurveZMQ key pair file (0600) and its public key file; prints the public key (Z85)");
  curve->add_option("--secret-out", args->secret_out, "key pair file to create (public and secret, 0600)")
      ->required();
  curve->add_option("--public-out", args->public_out, "public key file to create ('public = <z85>', 0644)");
  curve->callback([args, &context] {
    RunGenerate(context, [&] { return GenerateCurve(*args, *context.out); });
  });

  CLI::App* master = generate->add_subcommand(
      "hsm-master", "a software-HSM master key file (0600), as [hsm] master_key_file reads it");
  master->add_option("--out", args->out, "file to create")->required();
  master->callback([args, &context] {
    RunGenerate(context, [&] { return GenerateHsmMaster(*args, *context.out); });
  });

  CLI::App* hex = generate->add_subcommand(
      "hex", "N random bytes as hex digits (0600): 16 for a SHE transport key, 32 for an ecu-sim state key");
  hex->add_option("--bytes", args->bytes, "how many random bytes, 1..64")
      ->required()
      ->check(CLI::Range(1, 64));
  hex->add_option("--out", args->out, "file to create")->required();
  hex->callback([args, &context] {
    RunGenerate(context, [&] { return GenerateHex(*args, *context.out); });
  });
}

}  // namespace keyline::keylinectl
