// keyline-bench she: SHE M1..M3 sets/s and M4/M5 checks/s on one thread, with the raw AES-128
// block rate of the same backend in the same run as the ceiling.
//
// The set-up follows the PKS: one transport key (the auth key for every ECU, derived once),
// a pool of distinct new keys, a new UID and counter per set.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bench.h"
#include "keyline/hsm/key_custody.h"
#include "keyline/hsm/pkcs11_custody.h"
#include "keyline/hsm/software_custody.h"

namespace keyline::bench {
namespace {

using Clock = std::chrono::steady_clock;
using hsm::KeyCustody;
using hsm::KeyHandle;
using hsm::KeyKind;

struct SheBenchArgs {
  std::string backend = "software";
  bool json = false;
  double seconds = 1.0;
  size_t pool = 1024;
  // PKCS#11 settings (the PIN from a file or an environment variable only).
  std::string module = "/usr/lib/softhsm/libsofthsm2.so";
  std::string token_label;
  std::string pin_file;
  std::string pin_env = "KEYLINE_PKCS11_PIN";
};

// Runs `batch` until `seconds` have passed; returns operations per second.
template <typename Batch>
StatusOr<double> Rate(double seconds, size_t ops_per_batch, Batch batch) {
  size_t ops = 0;
  auto start = Clock::now();
  auto deadline = start + std::chrono::duration<double>(seconds);
  Clock::time_point now;
  do {
    RETURN_IF_ERROR(batch());
    ops += ops_per_batch;
    now = Clock::now();
  } while (now < deadline);
  return static_cast<double>(ops) / std::chrono::duration<double>(now - start).count();
}

// A master key file in a fresh temp directory, removed when the benchmark ends.
class TempMasterKey {
 public:
  TempMasterKey() {
    std::string pattern = (std::filesystem::temp_directory_path() / "keyline-bench-XXXXXX").string();
    if (::mkdtemp(pattern.data()) != nullptr) dir_ = pattern;
  }
  ~TempMasterKey() {
    std::error_code ignored;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ignored);
  }
  StatusOr<std::filesystem::path> Create() {
    if (dir_.empty()) return InternalError("cannot create a temp directory");
    std::filesystem::path path = dir_ / "master.key";
    RETURN_IF_ERROR(hsm::CreateMasterKeyFile(path, {}));
    return path;
  }

 private:
  std::filesystem::path dir_;
};

StatusOr<std::unique_ptr<KeyCustody>> OpenBackend(const SheBenchArgs& args, TempMasterKey& master) {
  if (args.backend == "software") {
    hsm::SoftwareCustodyOptions options;
    ASSIGN_OR_RETURN(options.master_key_file, master.Create());
    return hsm::CreateSoftwareCustody(options);
  }
  if (args.backend == "pkcs11") {
    if (args.token_label.empty()) {
      return InvalidArgumentError("--token-label is required with --backend pkcs11");
    }
    hsm::Pkcs11CustodyOptions options;
    options.module_path = args.module;
    options.token_label = args.token_label;
    if (!args.pin_file.empty()) {
      options.pin_file = args.pin_file;
    } else {
      options.pin_env_var = args.pin_env;
    }
    return hsm::CreatePkcs11Custody(options);
  }
  return InvalidArgumentError("--backend: '" + args.backend + "' is not software|pkcs11");
}

Status RunSheBench(const SheBenchArgs& args) {
  TempMasterKey master;
  ASSIGN_OR_RETURN(std::unique_ptr<KeyCustody> custody, OpenBackend(args, master));
  hsm::CustodyInfo info = custody->Info();
  ASSIGN_OR_RETURN(KeyHandle transport, custody->GenerateKey(KeyKind::kAes128));
  std::vector<KeyHandle> pool;
  std::vector<hsm::SheProof> proofs;
  hsm::SheProofFields fields;
  fields.slot = hsm::kSheSlotMasterEcuKey;
  fields.auth_slot = hsm::kSheSlotMasterEcuKey;
  fields.uid[0] = 0x42;
  for (size_t i = 0; i < args.pool; ++i) {
    ASSIGN_OR_RETURN(KeyHandle key, custody->GenerateKey(KeyKind::kAes128));
    pool.push_back(key);
    fields.counter = static_cast<uint32_t>(i + 1);
    fields.uid[14] = static_cast<uint8_t>(i);
    ASSIGN_OR_RETURN(hsm::SheProof proof, custody->ComputeSheProof(key, fields));
    proofs.push_back(proof);
  }

  // The first pass over the pool derives K1..K4 per key, as a PKS does once per key set.
  size_t next = 0;
  uint32_t counter = 1;
  hsm::SheLoadRequest request;
  request.auth_key = transport;
  request.fields = fields;
  constexpr size_t kBatch = 64;
  ASSIGN_OR_RETURN(double m1_m3, Rate(args.seconds, kBatch, [&]() -> Status {
    for (size_t i = 0; i < kBatch; ++i) {
      request.new_key = pool[next];
      request.fields.counter = counter;
      request.fields.uid[13] = static_cast<uint8_t>(counter >> 8);
      request.fields.uid[14] = static_cast<uint8_t>(counter);
      counter = counter % hsm::kSheMaxCounter + 1;
      next = (next + 1) % pool.size();
      RETURN_IF_ERROR(custody->ComputeSheLoad(request).status());
    }
    return Status::Ok();
  }));

  size_t valid = 0;
  ASSIGN_OR_RETURN(double checks, Rate(args.seconds, kBatch, [&]() -> Status {
    for (size_t i = 0; i < kBatch; ++i) {
      ASSIGN_OR_RETURN(hsm::SheProofCheck check, custody->CheckSheProof(pool[next], proofs[next]));
      valid += check.valid ? 1 : 0;
      next = (next + 1) % pool.size();
    }
    return Status::Ok();
  }));
  if (valid == 0) return InternalError("no proof checked valid: the benchmark is broken");

  // The PKS's path per ECU: the key set's key comes out of RocksDB as a wrapped blob, is
  // unwrapped into a fresh handle (nothing cached), used once and destroyed.
  std::vector<hsm::WrappedKey> stored;
  for (size_t i = 0; i < pool.size(); ++i) {
    ASSIGN_OR_RETURN(hsm::WrappedKey blob, custody->WrapForStorage(pool[i], "bench/" + std::to_string(i)));
    stored.push_back(std::move(blob));
  }
  std::vector<std::string> contexts;
  for (size_t i = 0; i < pool.size(); ++i) contexts.push_back("bench/" + std::to_string(i));
  ASSIGN_OR_RETURN(double unwrap_m1_m3, Rate(args.seconds, kBatch, [&]() -> Status {
    for (size_t i = 0; i < kBatch; ++i) {
      ASSIGN_OR_RETURN(KeyHandle key, custody->UnwrapFromStorage(stored[next], contexts[next]));
      request.new_key = key;
      RETURN_IF_ERROR(custody->ComputeSheLoad(request).status());
      RETURN_IF_ERROR(custody->DestroyKey(key));
      next = (next + 1) % pool.size();
    }
    return Status::Ok();
  }));
  ASSIGN_OR_RETURN(double unwrap_check, Rate(args.seconds, kBatch, [&]() -> Status {
    for (size_t i = 0; i < kBatch; ++i) {
      ASSIGN_OR_RETURN(KeyHandle key, custody->UnwrapFromStorage(stored[next], contexts[next]));
      ASSIGN_OR_RETURN(hsm::SheProofCheck check, custody->CheckSheProof(key, proofs[next]));
      valid += check.valid ? 1 : 0;
      RETURN_IF_ERROR(custody->DestroyKey(key));
      next = (next + 1) % pool.size();
    }
    return Status::Ok();
  }));

  ASSIGN_OR_RETURN(double aes_calls, Rate(args.seconds, 1024, [&]() -> Status {
    return custody->BenchmarkAesBlocks(transport, 1024, 1);
  }));
  ASSIGN_OR_RETURN(double aes_bulk_calls, Rate(args.seconds, 64, [&]() -> Status {
    return custody->BenchmarkAesBlocks(transport, 64, 256);
  }));
  double aes_bulk = aes_bulk_calls * 256;

  if (args.json) {
    nlohmann::json j = {{"backend", info.backend},
                        {"description", info.description},
                        {"m1_m3_per_s", m1_m3},
                        {"m4_m5_checks_per_s", checks},
                        {"aes_blocks_per_s", aes_calls},
                        {"unwrap_m1_m3_per_s", unwrap_m1_m3},
                        {"unwrap_m4_m5_checks_per_s", unwrap_check},
                        {"aes_bulk_blocks_per_s", aes_bulk},
                        {"pool_keys", pool.size()},
                        {"seconds_per_figure", args.seconds}};
    std::cout << j.dump() << '\n';
  } else {
    std::printf("backend               %s (%s)\n", info.backend.c_str(), info.description.c_str());
    std::printf("M1..M3 sets/s         %12.0f   (one transport key, %zu new keys)\n", m1_m3,
                pool.size());
    std::printf("M4/M5 checks/s        %12.0f   (K3/K4 cached with the handle)\n", checks);
    std::printf("unwrap + M1..M3 /s    %12.0f   (stored blob -> fresh handle -> M1..M3)\n",
                unwrap_m1_m3);
    std::printf("unwrap + M4/M5 /s     %12.0f   (stored blob -> fresh handle -> check)\n",
                unwrap_check);
    std::printf("AES-128 blocks/s      %12.0f   (one block per call: the ceiling)\n", aes_calls);
    std::printf("AES-128 bulk blocks/s %12.0f   (256 blocks per call)\n", aes_bulk);
  }
  for (KeyHandle key : pool) RETURN_IF_ERROR(custody->DestroyKey(key));
  return custody->DestroyKey(transport);
}

}  // namespace

void RegisterSheBench(CLI::App& root, BenchContext& context) {
  auto args = std::make_shared<SheBenchArgs>();
  CLI::App* she = root.add_subcommand("she", "SHE M1..M3 and M4/M5 throughput, AES ceiling");
  she->add_option("--backend", args->backend, "software|pkcs11 (default software)");
  she->add_flag("--json", args->json, "print JSON");
  she->add_option("--seconds", args->seconds, "time per figure (default 1)");
  she->add_option("--pool", args->pool, "distinct new keys (default 1024)");
  she->add_option("--module", args->module, "PKCS#11 module path");
  she->add_option("--token-label", args->token_label, "PKCS#11 token label");
  she->add_option("--pin-file", args->pin_file, "file holding the PKCS#11 user PIN");
  she->add_option("--pin-env", args->pin_env,
                  "environment variable holding the PIN (default KEYLINE_PKCS11_PIN)");
  she->callback([args, &context] {
    Status status = RunSheBench(*args);
    if (!status.ok()) {
      std::cerr << "keyline-bench: " << status.message() << '\n';
      context.exit_code = status.code() == StatusCode::kInvalidArgument ? 2 : 1;
    }
  });
}

}  // namespace keyline::bench
