// keyline-bench import: imports one OEM batch of N three-slot key sets into a fresh KMS data
// dir and prints key sets/s, with the HSM adapter's raw storage-wrap rate in the same run as
// the ceiling (three storage wraps per key set through WrapManyForStorage, as the import makes
// them: the work an import cannot avoid).
// Writing the batch file (the OEM's side) is not timed. With --export it also ships every key
// set to a plant, applies a signed INJECTED record for each (set-up, not timed) and times the
// verification export: 3 lines per key set, written and signed.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "bench.h"
#include "keyline/hsm/key_custody.h"
#include "keyline/hsm/software_custody.h"
#include "keyline/kms/batch_file.h"
#include "keyline/kms/kms.h"
#include "keyline/wire/admin_generated.h"
#include "keyline/schemas/build.h"
#include "keyline/wire/kms_pks_generated.h"
#include "keyline/wire/records_generated.h"

namespace keyline::bench {
namespace {

using Clock = std::chrono::steady_clock;

struct ImportBenchArgs {
  uint64_t key_sets = 100000;
  bool json = false;
  std::string dir;
  // Also ship every key set to a plant, apply one signed INJECTED record per key set, and time
  // the verification export (3 lines per key set). The set-up is not timed.
  bool export_file = false;
};

// Ships every key set to one plant and applies an INJECTED record for each (signed by the
// plant's key, proofs are placeholders: the export does not check them); returns the lines the
// export will hold.
StatusOr<uint64_t> InjectEverything(kms::Kms& kms, uint64_t key_sets, const std::string& batch_id) {
  ASSIGN_OR_RETURN(auto plant_custody, hsm::CreateSoftwareCustody({}));
  ASSIGN_OR_RETURN(hsm::KeyHandle transfer, plant_custody->GenerateKey(hsm::KeyKind::kX25519));
  ASSIGN_OR_RETURN(hsm::KeyHandle signing, plant_custody->GenerateKey(hsm::KeyKind::kEd25519));
  ASSIGN_OR_RETURN(hsm::PublicKey transfer_public, plant_custody->GetPublicKey(transfer));
  ASSIGN_OR_RETURN(hsm::PublicKey signing_public, plant_custody->GetPublicKey(signing));
  ASSIGN_OR_RETURN(std::vector<uint8_t> curve, plant_custody->Random(32));
  {
    flatbuffers::FlatBufferBuilder fbb;
    auto c = wire::CreatePlantAdd(fbb, fbb.CreateString("plant-bench"), fbb.CreateVector(curve),
                                  fbb.CreateVector(transfer_public.bytes.data(), 32),
                                  fbb.CreateVector(signing_public.bytes.data(), 32));
    fbb.Finish(wire::CreateAdminRequest(fbb, wire::AdminCommand::PlantAdd, c.Union()));
    RETURN_IF_ERROR(kms.HandleAdmin("bench", schemas::FinishedBytes(fbb)).status());
  }
  std::vector<std::vector<uint8_t>> requests;
  for (uint64_t shipped = 0, n = 0; shipped < key_sets; shipped += 2000, ++n) {
    flatbuffers::FlatBufferBuilder fbb;
    fbb.Finish(wire::CreateStockRequest(fbb, fbb.CreateString("r" + std::to_string(n)),
                                        fbb.CreateString("bench-ecu"), 2000));
    auto bytes = schemas::FinishedBytes(fbb);
    requests.emplace_back(bytes.begin(), bytes.end());
    if (requests.size() == 16 || shipped + 2000 >= key_sets) {
      RETURN_IF_ERROR(kms.ApplyFromPlant("plant-bench", static_cast<uint16_t>(wire::MessageType::StockRequest), requests));
      requests.clear();
    }
  }
  std::vector<std::vector<uint8_t>> records;
  const std::vector<uint8_t> m4(32, 0x44);
  const std::vector<uint8_t> m5(16, 0x55);
  for (uint64_t i = 0; i < key_sets; ++i) {
    flatbuffers::FlatBufferBuilder fbb(512);
    std::array<uint8_t, 15> uid{};
    for (int b = 0; b < 8; ++b) uid[static_cast<size_t>(14 - b)] = static_cast<uint8_t>((i + 1) >> (8 * b));
    std::vector<flatbuffers::Offset<wire::RecordSlot>> slots;
    for (uint8_t slot : {1, 4, 5}) {
      slots.push_back(wire::CreateRecordSlot(fbb, slot, 1, 1, slot == 1 ? 0 : 2, fbb.CreateVector(m4), fbb.CreateVector(m5)));
    }
    fbb.Finish(wire::CreateInjectionRecordBody(
        fbb, i + 1, fbb.CreateString("plant-bench"), fbb.CreateString("line1-eol1"), fbb.CreateString("bench-ecu"),
        fbb.CreateString(batch_id + "." + std::to_string(i)), fbb.CreateVector(uid.data(), uid.size()),
        wire::RecordOutcome::INJECTED, fbb.CreateString(""), 1764645000000000 + static_cast<int64_t>(i),
        fbb.CreateVector(slots)));
    auto body = schemas::FinishedBytes(fbb);
    ASSIGN_OR_RETURN(hsm::Signature signature, plant_custody->Sign(signing, body));
    records.push_back(schemas::BuildInjectionRecord(body, "plant-bench", signature));
    if (records.size() == 2000 || i + 1 == key_sets) {
      RETURN_IF_ERROR(kms.ApplyFromPlant("plant-bench", static_cast<uint16_t>(wire::MessageType::InjectionRecord), records));
      records.clear();
    }
  }
  return key_sets * 3;
}

double Seconds(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

Status RunImportBench(const ImportBenchArgs& args) {
  if (args.key_sets == 0) return InvalidArgumentError("--key-sets must be at least 1");
  std::filesystem::path root = args.dir.empty() ? std::filesystem::temp_directory_path() : std::filesystem::path(args.dir);
  std::string pattern = (root / "keyline-import-bench-XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr) return UnavailableError("cannot create a temp dir under " + root.string());
  const std::filesystem::path dir = pattern;
  struct Cleanup {
    std::filesystem::path dir;
    ~Cleanup() {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    }
  } cleanup{dir};

  RETURN_IF_ERROR(hsm::CreateMasterKeyFile(dir / "master.key", {}));
  hsm::SoftwareCustodyOptions custody_options;
  custody_options.master_key_file = dir / "master.key";
  ASSIGN_OR_RETURN(auto custody, hsm::CreateSoftwareCustody(custody_options));
  hsm::KeyCustody* kms_custody = custody.get();
  kms::KmsOptions options;
  options.data_dir = dir / "kms";
  ASSIGN_OR_RETURN(auto kms, kms::Kms::Open(options, std::move(custody)));

  // The OEM: a signing key, an OEM and a product registered through the admin path.
  ASSIGN_OR_RETURN(auto oem_custody, hsm::CreateSoftwareCustody({}));
  ASSIGN_OR_RETURN(hsm::KeyHandle oem_key, oem_custody->GenerateKey(hsm::KeyKind::kEd25519));
  ASSIGN_OR_RETURN(hsm::PublicKey oem_public, oem_custody->GetPublicKey(oem_key));
  {
    flatbuffers::FlatBufferBuilder fbb;
    auto c = wire::CreateOemAdd(fbb, fbb.CreateString("bench"), fbb.CreateVector(oem_public.bytes.data(), 32));
    fbb.Finish(wire::CreateAdminRequest(fbb, wire::AdminCommand::OemAdd, c.Union()));
    RETURN_IF_ERROR(kms->HandleAdmin("bench", schemas::FinishedBytes(fbb)).status());
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    std::vector<flatbuffers::Offset<wire::SlotLayout>> slots = {
        wire::CreateSlotLayout(fbb, 1, 1, 1, 0), wire::CreateSlotLayout(fbb, 4, 1, 1, 2),
        wire::CreateSlotLayout(fbb, 5, 1, 1, 2)};
    auto p = wire::CreateProduct(fbb, fbb.CreateString("bench-ecu"), fbb.CreateString("bench"), fbb.CreateVector(slots),
                                 wire::SheFlagLayout::SHE_CLASSIC, fbb.CreateString("transport"), 100, 1000, 60);
    auto c = wire::CreateProductAdd(fbb, p);
    fbb.Finish(wire::CreateAdminRequest(fbb, wire::AdminCommand::ProductAdd, c.Union()));
    RETURN_IF_ERROR(kms->HandleAdmin("bench", schemas::FinishedBytes(fbb)).status());
  }
  kms::OemBatchSpec spec;
  spec.oem = "bench";
  spec.product = "bench-ecu";
  spec.slots = {1, 4, 5};
  spec.count = args.key_sets;
  spec.kms_import_key = kms->import_public_key();
  auto generate_start = Clock::now();
  ASSIGN_OR_RETURN(std::string batch_id, kms::WriteOemBatch(*oem_custody, oem_key, spec, dir / "batch.klb", std::nullopt));
  const double generate_s = Seconds(generate_start);
  const uint64_t file_bytes = std::filesystem::file_size(dir / "batch.klb");

  auto import_start = Clock::now();
  ASSIGN_OR_RETURN(kms::ImportResult result, kms->ImportBatchFile(dir / "batch.klb", "bench"));
  const double import_s = Seconds(import_start);
  if (result.added != args.key_sets) {
    return InternalError("imported " + std::to_string(result.added) + " of " + std::to_string(args.key_sets));
  }

  // Ceiling: the custody's raw storage-wrap rate through the call the import makes
  // (WrapManyForStorage, one chunk of 1024 three-slot key sets per call), same process.
  constexpr size_t kWrapsPerCall = 1024 * 3;
  std::vector<hsm::KeyHandle> samples;
  std::vector<std::string> sample_contexts;
  for (size_t i = 0; i < kWrapsPerCall; ++i) {
    ASSIGN_OR_RETURN(hsm::KeyHandle sample, kms_custody->GenerateKey(hsm::KeyKind::kAes128));
    samples.push_back(sample);
    sample_contexts.push_back("keyset/bench." + std::to_string(i / 3) + "/slot/" + std::to_string(i % 3 + 1));
  }
  const uint64_t calls = std::max<uint64_t>(1, std::min<uint64_t>(args.key_sets * 3, 900000) / kWrapsPerCall);
  auto wrap_start = Clock::now();
  for (uint64_t i = 0; i < calls; ++i) {
    RETURN_IF_ERROR(kms_custody->WrapManyForStorage(samples, sample_contexts).status());
  }
  const double wrap_s = Seconds(wrap_start);
  const double wraps_per_s = static_cast<double>(calls * kWrapsPerCall) / wrap_s;
  for (const hsm::KeyHandle& sample : samples) RETURN_IF_ERROR(kms_custody->DestroyKey(sample));

  double export_s = 0;
  uint64_t export_lines = 0;
  if (args.export_file) {
    ASSIGN_OR_RETURN(uint64_t expected, InjectEverything(*kms, args.key_sets, batch_id));
    auto export_start = Clock::now();
    ASSIGN_OR_RETURN(kms::ExportResult exported, kms->ExportInjected("bench", dir / "verification.jsonl"));
    export_s = Seconds(export_start);
    export_lines = exported.lines;
    if (export_lines != expected) {
      return InternalError("exported " + std::to_string(export_lines) + " lines, expected " + std::to_string(expected));
    }
  }

  const double rate = static_cast<double>(args.key_sets) / import_s;
  const double ceiling = wraps_per_s / 3.0;
  if (args.json) {
    std::cout << nlohmann::json{{"key_sets", args.key_sets},
                                {"key_sets_per_s", rate},
                                {"ceiling_per_s", ceiling},
                                {"import_s", import_s},
                                {"batch_file_bytes", file_bytes},
                                {"generate_s", generate_s},
                                {"storage_wraps_per_s", wraps_per_s},
                                {"export_lines", export_lines},
                                {"export_lines_per_s", export_s > 0 ? static_cast<double>(export_lines) / export_s : 0.0}}
                     .dump()
              << '\n';
  } else {
    std::printf("import: %llu key sets (3 slots) in %.2f s = %.0f key sets/s\n",
                static_cast<unsigned long long>(args.key_sets), import_s, rate);
    std::printf("ceiling: %.0f key sets/s (%.0f storage wraps/s through WrapManyForStorage, 3 per key set)\n", ceiling, wraps_per_s);
    std::printf("batch file: %llu bytes, written by the OEM stand-in in %.2f s (not timed)\n",
                static_cast<unsigned long long>(file_bytes), generate_s);
    if (args.export_file) {
      std::printf("export: %llu verification lines (signed) in %.2f s = %.0f lines/s\n",
                  static_cast<unsigned long long>(export_lines), export_s, static_cast<double>(export_lines) / export_s);
    }
  }
  return Status::Ok();
}

}  // namespace

void RegisterImportBench(CLI::App& root, BenchContext& context) {
  auto args = std::make_shared<ImportBenchArgs>();
  auto* command = root.add_subcommand("import", "KMS: import one OEM batch of N key sets into a fresh data dir");
  command->add_option("--key-sets", args->key_sets, "key sets in the batch (3 slots each; default 100000)");
  command->add_option("--dir", args->dir, "where to put the temp data dir (default $TMPDIR)");
  command->add_flag("--json", args->json, "print JSON: key_sets, key_sets_per_s, ceiling_per_s");
  command->add_flag("--export", args->export_file,
                    "also inject every key set and time the verification export (3 lines per key set)");
  command->callback([args, &context] {
    Status status = RunImportBench(*args);
    if (!status.ok()) {
      std::cerr << "keyline-bench import: " << status.message() << '\n';
      context.exit_code = status.code() == StatusCode::kInvalidArgument ? 2 : 1;
    }
  });
}

}  // namespace keyline::bench
