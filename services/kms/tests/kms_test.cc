// The KMS library with real RocksDB in temp dirs and real links on loopback: imports and their
// refusals, allocation, records, verification export, audit tamper detection.
#include <algorithm>
#include <chrono>
#include <fstream>
#include <set>
#include <thread>

#include <boost/test/unit_test.hpp>
#include <nlohmann/json.hpp>
#include <rocksdb/db.h>

#include "keyline/common/hex.h"
#include "keyline/hsm/software_custody.h"
#include "keyline/hsm/x509.h"
#include "keyline/kms/batch_file.h"
#include "keyline/kms/kms.h"
#include "keyline/schemas/build.h"
#include "keyline/testing/temp_dir.h"
#include "keyline/wire/admin_generated.h"
#include "keyline/wire/kms_pks_generated.h"
#include "plant_sim.h"

namespace keyline::kms::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using TestDir = keyline::testing::TempDir;

const std::vector<SlotLoad> kLayout = {{1, 1, 1, 0}, {4, 1, 1, 0x02}, {5, 1, 1, 0x02}};

template <typename F>
bool WaitFor(F condition, std::chrono::milliseconds limit = 20s) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return condition();
}

std::vector<uint8_t> Finish(flatbuffers::FlatBufferBuilder& fbb, wire::AdminCommand type, flatbuffers::Offset<void> command) {
  fbb.Finish(wire::CreateAdminRequest(fbb, type, command));
  auto bytes = schemas::FinishedBytes(fbb);
  return {bytes.begin(), bytes.end()};
}

struct Harness {
  Harness() { Open(); }

  void Open() {
    if (!std::filesystem::exists(dir.path() / "master.key")) {
      BOOST_REQUIRE(hsm::CreateMasterKeyFile(dir.path() / "master.key", {}).ok());
    }
    hsm::SoftwareCustodyOptions custody_options;
    custody_options.master_key_file = dir.path() / "master.key";
    auto custody = hsm::CreateSoftwareCustody(custody_options);
    BOOST_REQUIRE(custody.ok());
    KmsOptions options;
    options.data_dir = dir.path() / "kms";
    options.link_bind = "tcp://127.0.0.1:0";
    options.admin_bind = "tcp://127.0.0.1:0";
    options.heartbeat_interval_ms = 100;
    options.heartbeat_timeout_ms = 1000;
    auto opened = Kms::Open(options, std::move(*custody));
    BOOST_REQUIRE_MESSAGE(opened.ok(), opened.status().ToString());
    kms = std::move(*opened);
    BOOST_REQUIRE(kms->Serve().ok());
  }
  void Close() { kms.reset(); }

  StatusOr<json> Admin(std::vector<uint8_t> request) {
    ASSIGN_OR_RETURN(std::vector<uint8_t> reply, kms->HandleAdmin("admin", request));
    auto decoded = flatbuffers::GetRoot<wire::AdminReply>(reply.data());
    return json::parse(decoded->json()->str());
  }

  void AddOem(const std::string& name, const hsm::PublicKey& key) {
    flatbuffers::FlatBufferBuilder fbb;
    auto c = wire::CreateOemAdd(fbb, fbb.CreateString(name), fbb.CreateVector(key.bytes.data(), 32));
    auto r = Admin(Finish(fbb, wire::AdminCommand::OemAdd, c.Union()));
    BOOST_REQUIRE_MESSAGE(r.ok(), r.status().ToString());
  }

  Status AddProduct(const std::string& name, const std::string& oem) {
    flatbuffers::FlatBufferBuilder fbb;
    std::vector<flatbuffers::Offset<wire::SlotLayout>> slots;
    for (const SlotLoad& s : kLayout) slots.push_back(wire::CreateSlotLayout(fbb, s.slot, s.auth_slot, s.counter, s.flags));
    auto p = wire::CreateProduct(fbb, fbb.CreateString(name), fbb.CreateString(oem), fbb.CreateVector(slots),
                                 wire::SheFlagLayout::SHE_CLASSIC, fbb.CreateString("transport"), 10, 50, 60);
    auto c = wire::CreateProductAdd(fbb, p);
    return Admin(Finish(fbb, wire::AdminCommand::ProductAdd, c.Union())).status();
  }

  void AddPlant(PlantSim& plant) {
    flatbuffers::FlatBufferBuilder fbb;
    auto c = wire::CreatePlantAdd(fbb, fbb.CreateString(plant.plant()),
                                  fbb.CreateVector(plant.curve().public_key().data(), 32),
                                  fbb.CreateVector(plant.wrap_public().bytes.data(), 32),
                                  fbb.CreateVector(plant.signing_public().bytes.data(), 32));
    auto r = Admin(Finish(fbb, wire::AdminCommand::PlantAdd, c.Union()));
    BOOST_REQUIRE_MESSAGE(r.ok(), r.status().ToString());
  }

  json KmsStatus() {
    auto s = kms->StatusJson();
    BOOST_REQUIRE(s.ok());
    return json::parse(*s);
  }

  json ProductStatus(const std::string& product) {
    const json status = KmsStatus();
    for (const auto& p : status["products"]) {
      if (p["product"] == product) return p;
    }
    return {};
  }

  TestDir dir;
  std::unique_ptr<Kms> kms;
};

// An OEM with its own tooling custody and signing key.
struct Oem {
  Oem() {
    custody = std::move(*hsm::CreateSoftwareCustody({}));
    signing = *custody->GenerateKey(hsm::KeyKind::kEd25519);
    public_key = *custody->GetPublicKey(signing);
  }
  std::filesystem::path Batch(Harness& h, const std::string& name, uint64_t count, const std::string& product = "bcm",
                              std::optional<std::filesystem::path> secrets = std::nullopt,
                              std::optional<hsm::PublicKey> import_key = std::nullopt) {
    OemBatchSpec spec;
    spec.oem = "acme";
    spec.product = product;
    spec.batch_id = "acme-" + name;
    spec.slots = {1, 4, 5};
    spec.count = count;
    spec.kms_import_key = import_key ? *import_key : h.kms->import_public_key();
    std::filesystem::path out = h.dir.path() / (name + ".klb");
    auto written = WriteOemBatch(*custody, signing, spec, out, secrets);
    BOOST_REQUIRE_MESSAGE(written.ok(), written.status().ToString());
    return out;
  }
  std::unique_ptr<hsm::KeyCustody> custody;
  hsm::KeyHandle signing;
  hsm::PublicKey public_key;
};

struct Setup : Harness {
  Setup() {
    AddOem("acme", oem.public_key);
    BOOST_REQUIRE(AddProduct("bcm", "acme").ok());
  }
  Oem oem;
};

std::vector<uint8_t> ReadAll(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

BOOST_AUTO_TEST_SUITE(Import)

BOOST_AUTO_TEST_CASE(BatchImportedTwiceAddsNothing) {
  Setup s;
  auto file = s.oem.Batch(s, "b1", 50, "bcm", s.dir.path() / "secrets.jsonl");
  auto first = s.kms->ImportBatchFile(file, "admin");
  BOOST_REQUIRE_MESSAGE(first.ok(), first.status().ToString());
  BOOST_TEST(first->added == 50u);
  BOOST_TEST(!first->already_imported);
  auto second = s.kms->ImportBatchFile(file, "admin");
  BOOST_REQUIRE(second.ok());
  BOOST_TEST(second->added == 0u);
  BOOST_TEST(second->already_imported);
  json product = s.ProductStatus("bcm");
  BOOST_TEST(product["imported"] == 50);
  BOOST_TEST(product["kms_stock"] == 50);
  BOOST_TEST(product["counts_conserved"] == true);
  // The staging dir keeps nothing once a batch is in.
  BOOST_TEST(std::filesystem::is_empty(s.dir.path() / "kms" / "batches"));
}

BOOST_AUTO_TEST_CASE(SecretsFileHasExactlyTheAgreedFieldsAndKeysNeverReachTheDatabase) {
  Setup s;
  auto file = s.oem.Batch(s, "b2", 20, "bcm", s.dir.path() / "secrets.jsonl");
  BOOST_REQUIRE(s.kms->ImportBatchFile(file, "admin").ok());
  std::ifstream in(s.dir.path() / "secrets.jsonl");
  std::string line;
  std::vector<std::vector<uint8_t>> keys;
  int lines = 0;
  while (std::getline(in, line)) {
    json j = json::parse(line);
    BOOST_TEST(j.size() == 3u);
    BOOST_TEST(j["key_set_id"] == "acme-b2." + std::to_string(lines));
    BOOST_TEST(j["product"] == "bcm");
    BOOST_TEST(j["slots"].size() == 3u);
    BOOST_TEST(j["slots"][1]["slot"] == 4);
    keys.push_back(*ParseHex(j["slots"][0]["key"].get<std::string>(), "key", 16));
    ++lines;
  }
  BOOST_TEST(lines == 20);
  s.Close();  // flush RocksDB's files
  for (const auto& entry : std::filesystem::recursive_directory_iterator(s.dir.path() / "kms")) {
    if (!entry.is_regular_file()) continue;
    std::vector<uint8_t> content = ReadAll(entry.path());
    for (const auto& key : keys) {
      const bool absent = std::search(content.begin(), content.end(), key.begin(), key.end()) == content.end();
      BOOST_TEST_REQUIRE(absent, "a key in clear in " << entry.path());
    }
  }
}

BOOST_AUTO_TEST_CASE(RefusedFilesChangeNothing) {
  Setup s;
  auto good = s.oem.Batch(s, "ok", 10);
  Oem stranger;
  auto foreign = stranger.Batch(s, "foreign", 10);
  BOOST_REQUIRE(s.AddProduct("other", "acme").ok());
  const hsm::PublicKey other_kms = *s.oem.custody->GetPublicKey(*s.oem.custody->GenerateKey(hsm::KeyKind::kX25519));
  auto wrong_key = s.oem.Batch(s, "wrongkey", 10, "bcm", std::nullopt, other_kms);
  auto unknown_product = s.oem.Batch(s, "unknownproduct", 10, "nope");

  std::vector<uint8_t> bytes = ReadAll(good);
  auto write = [&](const std::string& name, const std::vector<uint8_t>& content) {
    std::filesystem::path p = s.dir.path() / name;
    std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(content.data()), content.size());
    return p;
  };
  std::vector<uint8_t> tampered = bytes;
  {
    // A byte inside the sealed chunk (it starts with the seal's magic "KLP1"), under the signature.
    const std::string magic = "KLP1";
    auto at = std::search(tampered.begin(), tampered.end(), magic.begin(), magic.end());
    BOOST_REQUIRE(at != tampered.end());
    *(at + 40) ^= 0x01;
  }
  std::vector<uint8_t> truncated(bytes.begin(), bytes.begin() + bytes.size() / 2);
  std::vector<uint8_t> garbage(4096, 0x5a);

  struct Case {
    std::filesystem::path file;
    StatusCode code;
    std::string text;
  };
  std::vector<Case> cases = {
      {write("tampered.klb", tampered), StatusCode::kUnauthenticated, "signature does not verify"},
      {foreign, StatusCode::kUnauthenticated, "signature does not verify with OEM acme's registered key"},
      {unknown_product, StatusCode::kNotFound, "product nope is not registered"},
      {wrong_key, StatusCode::kFailedPrecondition, "sealed for another KMS import key"},
      {write("truncated.klb", truncated), StatusCode::kInvalidArgument, "failed FlatBuffers verification"},
      {write("garbage.klb", garbage), StatusCode::kInvalidArgument, "not a Keyline batch file"},
      {s.dir.path() / "missing.klb", StatusCode::kNotFound, "cannot read"},
  };
  for (const Case& c : cases) {
    BOOST_TEST_CONTEXT(c.file.filename()) {
      auto result = s.kms->ImportBatchFile(c.file, "admin");
      BOOST_REQUIRE(!result.ok());
      BOOST_TEST((result.status().code() == c.code), result.status().ToString());
      BOOST_TEST(result.status().message().find(c.text) != std::string::npos, result.status().message());
    }
  }
  json product = s.ProductStatus("bcm");
  BOOST_TEST(product["imported"] == 0);
  BOOST_TEST(product["kms_stock"] == 0);
  BOOST_TEST(std::filesystem::is_empty(s.dir.path() / "kms" / "batches"));
  // The good file still imports afterwards.
  auto ok = s.kms->ImportBatchFile(good, "admin");
  BOOST_REQUIRE_MESSAGE(ok.ok(), ok.status().ToString());
  BOOST_TEST(ok->added == 10u);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(Stock)

BOOST_AUTO_TEST_CASE(OldestFirstSealedForThePlantAndShortStockRaisesAlert) {
  Setup s;
  PlantSim plant(s.dir.path() / "plant-a", "plant-a");
  s.AddPlant(plant);
  BOOST_REQUIRE(s.kms->ImportBatchFile(s.oem.Batch(s, "old", 5), "admin").ok());
  BOOST_REQUIRE(s.kms->ImportBatchFile(s.oem.Batch(s, "new", 5), "admin").ok());
  plant.Connect(s.kms->link_endpoint(), s.kms->curve_public_key());
  BOOST_REQUIRE(WaitFor([&] { return !plant.ConfigVersions().empty(); }));
  plant.RequestStock("r1", "bcm", 3);
  BOOST_REQUIRE(WaitFor([&] { return plant.Shipped().size() == 3; }));
  auto shipped = plant.Shipped();
  BOOST_TEST(shipped[0].key_set_id == "acme-old.0");
  BOOST_TEST(shipped[2].key_set_id == "acme-old.2");
  BOOST_TEST(shipped[0].slots == std::vector<uint8_t>({1, 4, 5}));
  // The plant opens what it got with its own transfer key (the PKS's path).
  std::array<uint8_t, 15> uid{};
  uid[14] = 1;
  (void)plant.MakeRecord(1, shipped[0], kLayout, uid, true);
  BOOST_TEST(s.KmsStatus()["alerts"].empty());

  plant.RequestStock("r2", "bcm", 10);
  BOOST_REQUIRE(WaitFor([&] { return plant.shipments() == 2; }));
  shipped = plant.Shipped();
  BOOST_REQUIRE(shipped.size() == 10u);
  BOOST_TEST(shipped[3].key_set_id == "acme-old.3");
  BOOST_TEST(shipped[5].key_set_id == "acme-new.0");
  json status = s.KmsStatus();
  BOOST_REQUIRE(status["alerts"].size() == 1u);
  BOOST_TEST(status["alerts"][0].get<std::string>().find("asked for 10 key sets of bcm, shipped 7") != std::string::npos);
  json product = s.ProductStatus("bcm");
  BOOST_TEST(product["kms_stock"] == 0);
  BOOST_TEST(product["shipped_in_plants"] == 10);
  BOOST_TEST(product["counts_conserved"] == true);
  // The same request id again is not answered a second time.
  plant.RequestStock("r2", "bcm", 10);
  std::this_thread::sleep_for(500ms);
  BOOST_TEST(plant.shipments() == 2u);
}

BOOST_AUTO_TEST_CASE(ConcurrentRequestsFromTwoPlantsNeverShareAKeySet) {
  Setup s;
  PlantSim a(s.dir.path() / "plant-a", "plant-a");
  PlantSim b(s.dir.path() / "plant-b", "plant-b");
  s.AddPlant(a);
  s.AddPlant(b);
  BOOST_REQUIRE(s.kms->ImportBatchFile(s.oem.Batch(s, "pool", 300), "admin").ok());
  a.Connect(s.kms->link_endpoint(), s.kms->curve_public_key());
  b.Connect(s.kms->link_endpoint(), s.kms->curve_public_key());
  std::thread ta([&] { for (int i = 0; i < 10; ++i) a.RequestStock("a" + std::to_string(i), "bcm", 20); });
  std::thread tb([&] { for (int i = 0; i < 10; ++i) b.RequestStock("b" + std::to_string(i), "bcm", 20); });
  ta.join();
  tb.join();
  BOOST_REQUIRE(WaitFor([&] { return a.shipments() == 10 && b.shipments() == 10; }));
  std::set<std::string> ids;
  size_t total = 0;
  for (PlantSim* p : {&a, &b}) {
    for (const auto& set : p->Shipped()) {
      ids.insert(set.key_set_id);
      ++total;
    }
  }
  BOOST_TEST(total == 300u);
  BOOST_TEST(ids.size() == 300u);  // no key set went out twice
  json product = s.ProductStatus("bcm");
  BOOST_TEST(product["kms_stock"] == 0);
  BOOST_TEST(product["counts_conserved"] == true);
}

BOOST_AUTO_TEST_CASE(ProductAndPlantChangesQueueVersionedConfigUpdates) {
  Setup s;
  PlantSim plant(s.dir.path() / "plant-a", "plant-a");
  s.AddPlant(plant);
  BOOST_REQUIRE(s.AddProduct("gateway", "acme").ok());
  // Unknown OEM: refused, nothing queued.
  auto refused = s.AddProduct("x", "nobody");
  BOOST_TEST((refused.code() == StatusCode::kNotFound));
  plant.Connect(s.kms->link_endpoint(), s.kms->curve_public_key());
  BOOST_REQUIRE(WaitFor([&] { return plant.ConfigVersions().size() == 2; }));
  BOOST_TEST(plant.ConfigVersions() == std::vector<uint64_t>({1, 2}));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(Records)

BOOST_AUTO_TEST_CASE(RecordsApplyOnceAndForgeriesAreRefused) {
  Setup s;
  PlantSim a(s.dir.path() / "plant-a", "plant-a");
  PlantSim b(s.dir.path() / "plant-b", "plant-b");
  s.AddPlant(a);
  s.AddPlant(b);
  BOOST_REQUIRE(s.kms->ImportBatchFile(s.oem.Batch(s, "r", 6), "admin").ok());
  a.Connect(s.kms->link_endpoint(), s.kms->curve_public_key());
  b.Connect(s.kms->link_endpoint(), s.kms->curve_public_key());
  a.RequestStock("a1", "bcm", 3);
  BOOST_REQUIRE(WaitFor([&] { return a.Shipped().size() == 3; }));
  b.RequestStock("b1", "bcm", 3);
  BOOST_REQUIRE(WaitFor([&] { return b.Shipped().size() == 3; }));
  auto ashipped = a.Shipped();
  auto bshipped = b.Shipped();
  std::array<uint8_t, 15> uid{};
  uid[14] = 7;  // all zero is SHE's wildcard UID
  const uint16_t kRecord = static_cast<uint16_t>(wire::MessageType::InjectionRecord);

  auto injected = a.MakeRecord(1, ashipped[0], kLayout, uid, true);
  a.Send("records", kRecord, injected);
  a.Send("records", kRecord, injected);                                      // duplicate
  a.Send("records", kRecord, a.MakeRecord(2, ashipped[1], kLayout, uid, false));  // burned
  hsm::KeyHandle forger = *a.custody().GenerateKey(hsm::KeyKind::kEd25519);
  a.Send("records", kRecord, a.MakeRecord(3, ashipped[2], kLayout, uid, true, &forger));  // forged
  ShippedKeySet theirs = bshipped[0];
  a.Send("records", kRecord, a.MakeRecord(4, theirs, {}, uid, false));     // not shipped to plant-a
  ShippedKeySet unknown = ashipped[2];
  unknown.key_set_id = "acme-r.999";
  a.Send("records", kRecord, a.MakeRecord(5, unknown, {}, uid, false));    // unknown key set
  a.Send("records", kRecord, a.MakeRecord(6, ashipped[0], kLayout, uid, true));  // second outcome

  json plant;
  BOOST_REQUIRE(WaitFor([&] {
    const json status = s.KmsStatus();
    for (const auto& p : status["plants"]) {
      if (p["plant"] == "plant-a") plant = p;
    }
    return plant["records_received"].get<int>() + plant["records_refused"].get<int>() +
               plant["records_duplicate"].get<int>() == 7;
  }));
  BOOST_TEST(plant["records_received"] == 2);
  BOOST_TEST(plant["records_duplicate"] == 1);
  BOOST_TEST(plant["records_refused"] == 4);
  BOOST_TEST(plant["injected"] == 1);
  BOOST_TEST(plant["burned"] == 1);
  BOOST_TEST(plant["key_sets_at_plant"] == 1);
  json product = s.ProductStatus("bcm");
  BOOST_TEST(product["counts_conserved"] == true);
  BOOST_TEST(!s.KmsStatus()["alerts"].empty());
}

BOOST_AUTO_TEST_CASE(VerificationExportCarriesEveryInjectedSlotAndIsSigned) {
  Setup s;
  PlantSim a(s.dir.path() / "plant-a", "plant-a");
  s.AddPlant(a);
  BOOST_REQUIRE(s.kms->ImportBatchFile(s.oem.Batch(s, "v", 4, "bcm", s.dir.path() / "secrets.jsonl"), "admin").ok());
  a.Connect(s.kms->link_endpoint(), s.kms->curve_public_key());
  a.RequestStock("a1", "bcm", 4);
  BOOST_REQUIRE(WaitFor([&] { return a.Shipped().size() == 4; }));
  auto shipped = a.Shipped();
  const uint16_t kRecord = static_cast<uint16_t>(wire::MessageType::InjectionRecord);
  for (uint64_t i = 0; i < 3; ++i) {
    std::array<uint8_t, 15> uid{};
    uid[14] = static_cast<uint8_t>(i + 1);
    a.Send("records", kRecord, a.MakeRecord(i + 1, shipped[i], kLayout, uid, true));
  }
  flatbuffers::FlatBufferBuilder fbb;
  auto open = wire::CreateVerificationOpen(fbb, fbb.CreateString("acme"));
  auto opened = s.Admin(Finish(fbb, wire::AdminCommand::VerificationOpen, open.Union()));
  BOOST_REQUIRE_MESSAGE(opened.ok(), opened.status().ToString());
  const std::string id = (*opened)["verification_id"];
  BOOST_TEST((*opened)["pending"] == json::array({"plant-a"}));
  BOOST_REQUIRE(WaitFor([&] { return a.VerificationRequests().size() == 1; }));
  BOOST_TEST(a.VerificationRequests()[0] == id);
  // Export before the plant answered: refused, naming the plant.
  flatbuffers::FlatBufferBuilder f1;
  auto early = wire::CreateVerificationFetch(f1, f1.CreateString(id), wire::VerificationPart::FILE, 0, 1 << 20);
  auto refused = s.Admin(Finish(f1, wire::AdminCommand::VerificationFetch, early.Union()));
  BOOST_REQUIRE(!refused.ok());
  BOOST_TEST(refused.status().message().find("still waits for: plant-a") != std::string::npos);

  flatbuffers::FlatBufferBuilder wm;
  wm.Finish(wire::CreateVerificationWatermark(wm, wm.CreateString(id), 3));
  auto wm_bytes = schemas::FinishedBytes(wm);
  a.Send("records", static_cast<uint16_t>(wire::MessageType::VerificationWatermark), {wm_bytes.begin(), wm_bytes.end()});
  BOOST_REQUIRE(WaitFor([&] { return s.KmsStatus()["verifications_pending"].empty(); }));

  auto exported = s.kms->ExportInjected("acme", s.dir.path() / "out.jsonl");
  BOOST_REQUIRE_MESSAGE(exported.ok(), exported.status().ToString());
  BOOST_TEST(exported->lines == 9u);
  std::ifstream in(s.dir.path() / "out.jsonl");
  std::string line;
  std::getline(in, line);
  json first = json::parse(line);
  std::set<std::string> fields;
  for (auto it = first.begin(); it != first.end(); ++it) fields.insert(it.key());
  BOOST_TEST(fields == std::set<std::string>({"ecu_uid", "product", "plant", "station", "key_set_id", "slot",
                                              "auth_slot", "counter", "flags", "m4", "m5", "injected_at",
                                              "record_sig"}));
  BOOST_TEST(first["ecu_uid"].get<std::string>().size() == 30u);
  BOOST_TEST(first["m4"].get<std::string>().size() == 64u);
  BOOST_TEST(first["injected_at"].get<std::string>().back() == 'Z');
  // The detached signature verifies over the file's bytes with the KMS signing key.
  std::vector<uint8_t> file = ReadAll(s.dir.path() / "out.jsonl");
  std::ifstream sig_in(s.dir.path() / "out.jsonl.sig");
  std::string sig_hex;
  sig_in >> sig_hex;
  auto sig_bytes = ParseHex(sig_hex, "sig", 64);
  BOOST_REQUIRE(sig_bytes.ok());
  hsm::Signature sig{};
  std::copy(sig_bytes->begin(), sig_bytes->end(), sig.begin());
  BOOST_TEST(hsm::VerifySignature(s.kms->signing_public_key(), file, sig).ok());
  file[0] ^= 1;
  BOOST_TEST(!hsm::VerifySignature(s.kms->signing_public_key(), file, sig).ok());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(Audit)

// Opens the stopped KMS's RocksDB and edits its audit column family.
template <typename F>
void EditAudit(const std::filesystem::path& db_path, F edit) {
  rocksdb::DBOptions options;
  std::vector<std::string> names;
  BOOST_REQUIRE(rocksdb::DB::ListColumnFamilies(options, db_path.string(), &names).ok());
  std::vector<rocksdb::ColumnFamilyDescriptor> families;
  for (const auto& n : names) families.emplace_back(n, rocksdb::ColumnFamilyOptions());
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  BOOST_REQUIRE(rocksdb::DB::Open(options, db_path.string(), families, &handles, &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);
  rocksdb::ColumnFamilyHandle* audit = nullptr;
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] == "audit") audit = handles[i];
  }
  BOOST_REQUIRE(audit != nullptr);
  edit(*db, audit);
  for (auto* h : handles) db->DestroyColumnFamilyHandle(h);
}

std::string AuditKey(uint64_t n) {
  std::string key = "e";
  for (int shift = 56; shift >= 0; shift -= 8) key.push_back(static_cast<char>(n >> shift));
  return key;
}

BOOST_AUTO_TEST_CASE(AuditVerifyDetectsChangedRemovedAndReorderedEntries) {
  Setup s;  // oem.add, product.add
  BOOST_REQUIRE(s.kms->ImportBatchFile(s.oem.Batch(s, "a", 3), "admin").ok());
  BOOST_REQUIRE(s.AddProduct("p2", "acme").ok());
  BOOST_REQUIRE(s.AddProduct("p3", "acme").ok());
  auto report = s.kms->VerifyAudit();
  BOOST_REQUIRE(report.ok());
  BOOST_TEST(report->intact);
  BOOST_TEST(report->entries == 5u);
  const auto db_path = s.dir.path() / "kms" / "db";

  auto verify_after = [&](auto edit, const std::string& expected) {
    s.Close();
    std::string saved2, saved3;
    EditAudit(db_path, [&](rocksdb::DB& db, rocksdb::ColumnFamilyHandle* cf) {
      BOOST_REQUIRE(db.Get({}, cf, AuditKey(2), &saved2).ok());
      BOOST_REQUIRE(db.Get({}, cf, AuditKey(3), &saved3).ok());
      edit(db, cf, saved2, saved3);
    });
    s.Open();
    auto r = s.kms->VerifyAudit();
    BOOST_REQUIRE(r.ok());
    BOOST_TEST(!r->intact);
    std::string all;
    for (const auto& p : r->problems) all += p + "; ";
    BOOST_TEST(all.find(expected) != std::string::npos, all);
    // Put it back.
    s.Close();
    EditAudit(db_path, [&](rocksdb::DB& db, rocksdb::ColumnFamilyHandle* cf) {
      BOOST_REQUIRE(db.Put({}, cf, AuditKey(2), saved2).ok());
      BOOST_REQUIRE(db.Put({}, cf, AuditKey(3), saved3).ok());
    });
    s.Open();
    BOOST_TEST(s.kms->VerifyAudit()->intact);
  };
  verify_after([](rocksdb::DB& db, rocksdb::ColumnFamilyHandle* cf, std::string e2, const std::string&) {
    auto pos = e2.find("\"oem\":\"acme\"");
    BOOST_REQUIRE(pos != std::string::npos);
    e2[pos + 8] = 'x';  // "acme" -> "xcme" in the detail
    BOOST_REQUIRE(db.Put({}, cf, AuditKey(2), e2).ok());
  }, "entry 2: hash does not match its content (changed)");
  verify_after([](rocksdb::DB& db, rocksdb::ColumnFamilyHandle* cf, const std::string&, const std::string&) {
    BOOST_REQUIRE(db.Delete({}, cf, AuditKey(3)).ok());
  }, "entries 3..3 are missing (removed)");
  verify_after([](rocksdb::DB& db, rocksdb::ColumnFamilyHandle* cf, const std::string& e2, const std::string& e3) {
    BOOST_REQUIRE(db.Put({}, cf, AuditKey(2), e3).ok());
    BOOST_REQUIRE(db.Put({}, cf, AuditKey(3), e2).ok());
  }, "moved or reordered");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(Certificates)

// The OEM's side: a P-256 root CA in its own custody.
struct OemRoot {
  explicit OemRoot(const std::string& organization = "Acme Motors") {
    custody = std::move(*hsm::CreateSoftwareCustody({}));
    key = *custody->GenerateKey(hsm::KeyKind::kEcdsaP256);
    hsm::CertificateSubject subject;
    subject.organization = organization;
    subject.common_name = organization + " root";
    certificate = *hsm::SelfSignCa(*custody, key, subject, hsm::ValidForDaysFromNow(3650));
  }
  std::string Sign(const std::string& csr_pem, std::span<const uint8_t> challenge) {
    auto checked = hsm::CheckCsr(csr_pem, challenge);
    BOOST_REQUIRE_MESSAGE(checked.ok(), checked.status().ToString());
    auto cert = hsm::IssueCaCertificate(*custody, key, certificate, *checked, hsm::ValidForDaysFromNow(1825));
    BOOST_REQUIRE_MESSAGE(cert.ok(), cert.status().ToString());
    return *cert;
  }
  std::unique_ptr<hsm::KeyCustody> custody;
  hsm::KeyHandle key;
  std::string certificate;
};

struct CaSetup : Setup {
  CaSetup() : plant(dir.path() / "plant-a", "plant-a") {
    AddPlant(plant);
    plant.Connect(kms->link_endpoint(), kms->curve_public_key());
  }
  StatusOr<json> ImportOemCa(const std::string& pem, const std::string& oem_name = "acme") {
    flatbuffers::FlatBufferBuilder fbb;
    auto c = wire::CreateOemCaImportDirect(fbb, oem_name.c_str(), pem.c_str());
    return Admin(Finish(fbb, wire::AdminCommand::OemCaImport, c.Union()));
  }
  StatusOr<json> Issue(const std::string& plant_id = "plant-a") {
    flatbuffers::FlatBufferBuilder fbb;
    auto c = wire::CreatePlantCaIssueDirect(fbb, plant_id.c_str(), "acme");
    return Admin(Finish(fbb, wire::AdminCommand::PlantCaIssue, c.Union()));
  }
  StatusOr<json> Install(const std::string& request_id, const std::string& pem) {
    flatbuffers::FlatBufferBuilder fbb;
    auto c = wire::CreatePlantCaInstallDirect(fbb, "plant-a", "acme", request_id.c_str(), pem.c_str());
    return Admin(Finish(fbb, wire::AdminCommand::PlantCaInstall, c.Union()));
  }
  StatusOr<json> Revoke() {
    flatbuffers::FlatBufferBuilder fbb;
    auto c = wire::CreatePlantCaRevokeDirect(fbb, "plant-a", "acme", "box stolen");
    return Admin(Finish(fbb, wire::AdminCommand::PlantCaRevoke, c.Union()));
  }
  // The plant's answer: a CSR from `key` in the plant's custody over the request's challenge.
  std::vector<uint8_t> Csr(const wire::PlantCaRequest& request, hsm::KeyHandle key,
                           std::optional<std::vector<uint8_t>> challenge = std::nullopt,
                           std::string common_name = "") {
    hsm::CertificateSubject subject;
    subject.organization = request.organization()->str();
    subject.organizational_unit = request.organizational_unit()->str();
    subject.common_name = common_name.empty() ? request.common_name()->str() : common_name;
    std::vector<uint8_t> nonce = challenge ? *challenge
                                           : std::vector<uint8_t>(request.challenge()->begin(), request.challenge()->end());
    auto csr = hsm::MakeCsr(plant.custody(), key, subject, nonce);
    BOOST_REQUIRE(csr.ok());
    flatbuffers::FlatBufferBuilder fbb;
    const std::string request_id = request.request_id()->str();
    fbb.Finish(wire::CreatePlantCaCsrDirect(fbb, request_id.c_str(), csr->c_str()));
    auto bytes = schemas::FinishedBytes(fbb);
    return {bytes.begin(), bytes.end()};
  }
  Status Deliver(const std::vector<uint8_t>& csr, const std::string& from = "plant-a") {
    std::vector<std::vector<uint8_t>> payloads = {csr};
    return kms->ApplyFromPlant(from, static_cast<uint16_t>(wire::MessageType::PlantCaCsr), payloads);
  }
  // Takes the plant's CA from request to ACTIVE (the plant's key made in the PlantSim's custody).
  void ActivateCa() {
    BOOST_REQUIRE(ImportOemCa(root.certificate).ok());
    auto issued = Issue();
    BOOST_REQUIRE_MESSAGE(issued.ok(), issued.status().ToString());
    BOOST_REQUIRE(WaitFor([&] { return plant.PlantCaRequests().size() == 1; }));
    const std::vector<uint8_t> request_bytes = plant.PlantCaRequests()[0];
    const auto* request = flatbuffers::GetRoot<wire::PlantCaRequest>(request_bytes.data());
    auto plant_key = *plant.custody().GenerateKey(hsm::KeyKind::kEcdsaP256);
    BOOST_REQUIRE(Deliver(Csr(*request, plant_key)).ok());
    std::vector<uint8_t> challenge(request->challenge()->begin(), request->challenge()->end());
    auto installed = Install((*issued)["request_id"], root.Sign((*Issue())["csr"], challenge));
    BOOST_REQUIRE_MESSAGE(installed.ok(), installed.status().ToString());
  }
  StatusOr<json> SetBudget(uint32_t min, uint32_t target, const std::string& plant_id = "plant-a") {
    flatbuffers::FlatBufferBuilder fbb;
    auto c = wire::CreateCertificateBudgetSetDirect(fbb, plant_id.c_str(), "acme", min, target);
    return Admin(Finish(fbb, wire::AdminCommand::CertificateBudgetSet, c.Union()));
  }
  Status AskBudget(const std::string& request_id, uint32_t count, const std::string& oem_name = "acme") {
    flatbuffers::FlatBufferBuilder fbb;
    fbb.Finish(wire::CreateCertificateBudgetRequestDirect(fbb, request_id.c_str(), oem_name.c_str(), count));
    auto bytes = schemas::FinishedBytes(fbb);
    std::vector<std::vector<uint8_t>> payloads = {{bytes.begin(), bytes.end()}};
    return kms->ApplyFromPlant("plant-a", static_cast<uint16_t>(wire::MessageType::CertificateBudgetRequest),
                               payloads);
  }
  json PlantBudget() {
    const json status = KmsStatus();
    BOOST_REQUIRE_EQUAL(status["plants"][0]["certificate_budgets"].size(), 1u);
    return status["plants"][0]["certificate_budgets"][0];
  }
  PlantSim plant;
  OemRoot root;
};

BOOST_AUTO_TEST_CASE(OemCaImportTakesOnlyASelfSignedCaCertificate) {
  CaSetup s;
  // Not a certificate, a CA's intermediate, an end-entity certificate, an unknown OEM.
  BOOST_TEST((s.ImportOemCa("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").status().code() ==
              StatusCode::kInvalidArgument));
  auto plant_key = *s.root.custody->GenerateKey(hsm::KeyKind::kEcdsaP256);
  const std::vector<uint8_t> nonce(32, 7);
  hsm::CertificateSubject sub;
  sub.common_name = "intermediate";
  auto csr = *hsm::MakeCsr(*s.root.custody, plant_key, sub, nonce);
  const std::string intermediate = s.root.Sign(csr, nonce);
  auto refused = s.ImportOemCa(intermediate);
  BOOST_TEST((refused.status().code() == StatusCode::kInvalidArgument));
  BOOST_TEST(refused.status().message().find("not self-signed") != std::string::npos);
  hsm::EndEntityProfile profile;
  profile.subject.serial_number = "00112233445566778899aabbccddee";
  auto leaf = *hsm::IssueEndEntity(*s.root.custody, s.root.key, s.root.certificate,
                                   *s.root.custody->GetPublicKeyInfo(plant_key), profile);
  BOOST_TEST(s.ImportOemCa(leaf).status().message().find("not a CA certificate") != std::string::npos);
  BOOST_TEST((s.ImportOemCa(s.root.certificate, "nobody").status().code() == StatusCode::kNotFound));
  BOOST_TEST(s.KmsStatus()["plants"][0]["issuing_cas"].empty());

  auto imported = s.ImportOemCa(s.root.certificate);
  BOOST_REQUIRE_MESSAGE(imported.ok(), imported.status().ToString());
  BOOST_TEST((*imported)["subject"] == "Acme Motors root");
  BOOST_TEST(s.ImportOemCa(s.root.certificate).ok());  // the same again: nothing changes
}

BOOST_AUTO_TEST_CASE(PlantCaIsIssuedOnlyForAProvenCsrAndShippedInTheConfiguration) {
  CaSetup s;
  // No OEM CA yet: nothing is asked of the plant.
  BOOST_TEST((s.Issue().status().code() == StatusCode::kFailedPrecondition));
  BOOST_REQUIRE(s.ImportOemCa(s.root.certificate).ok());
  auto issued = s.Issue();
  BOOST_REQUIRE_MESSAGE(issued.ok(), issued.status().ToString());
  BOOST_TEST((*issued)["state"] == "requested");
  BOOST_TEST((*issued)["key_name"] == "plant-ca/acme/1");
  const std::string request_id = (*issued)["request_id"];
  BOOST_TEST((*s.Issue())["request_id"] == request_id);  // asking again: the same request
  BOOST_REQUIRE(WaitFor([&] { return s.plant.PlantCaRequests().size() == 1; }));
  const std::vector<uint8_t> request_bytes = s.plant.PlantCaRequests()[0];
  const auto* request = flatbuffers::GetRoot<wire::PlantCaRequest>(request_bytes.data());
  BOOST_TEST(request->request_id()->str() == request_id);
  BOOST_TEST(request->organization()->str() == "Acme Motors");
  BOOST_TEST(request->organizational_unit()->str() == "plant-a");
  BOOST_TEST(request->challenge()->size() == 32u);

  // Refused CSRs leave the request open: a replayed nonce, another subject, another plant.
  auto plant_key = *s.plant.custody().GenerateKey(hsm::KeyKind::kEcdsaP256);
  auto replayed = s.Deliver(s.Csr(*request, plant_key, std::vector<uint8_t>(32, 0xaa)));
  BOOST_TEST((replayed.code() == StatusCode::kPermissionDenied));
  auto renamed = s.Deliver(s.Csr(*request, plant_key, std::nullopt, "acme root CA"));
  BOOST_TEST((renamed.code() == StatusCode::kPermissionDenied));
  BOOST_TEST(renamed.message().find("asks for subject") != std::string::npos);
  PlantSim plant_b(s.dir.path() / "plant-b", "plant-b");
  s.AddPlant(plant_b);
  BOOST_TEST((s.Deliver(s.Csr(*request, plant_key), "plant-b").code() == StatusCode::kPermissionDenied));
  BOOST_TEST((*s.Issue())["state"] == "requested");
  BOOST_TEST((s.Install(request_id, s.root.certificate).status().code() == StatusCode::kFailedPrecondition));

  BOOST_REQUIRE(s.Deliver(s.Csr(*request, plant_key)).ok());
  json ca = *s.Issue();
  BOOST_TEST(ca["state"] == "csr_received");
  const std::string csr = ca["csr"];
  std::vector<uint8_t> challenge(request->challenge()->begin(), request->challenge()->end());

  // Certificates the KMS refuses: from another root, for another key, not a CA.
  OemRoot stranger("Stranger");
  auto wrong_root = s.Install(request_id, stranger.Sign(csr, challenge));
  BOOST_TEST((wrong_root.status().code() == StatusCode::kUnauthenticated));
  auto other_key = *s.plant.custody().GenerateKey(hsm::KeyKind::kEcdsaP256);
  hsm::CertificateSubject subject = hsm::CheckCsr(csr, challenge)->subject;
  auto other_csr = *hsm::MakeCsr(s.plant.custody(), other_key, subject, challenge);
  BOOST_TEST((s.Install(request_id, s.root.Sign(other_csr, challenge)).status().code() ==
              StatusCode::kPermissionDenied));
  hsm::EndEntityProfile profile;
  profile.subject = subject;
  auto leaf = *hsm::IssueEndEntity(*s.root.custody, s.root.key, s.root.certificate,
                                   *s.plant.custody().GetPublicKeyInfo(plant_key), profile);
  BOOST_TEST((s.Install(request_id, leaf).status().code() == StatusCode::kInvalidArgument));
  BOOST_REQUIRE(WaitFor([&] { return !s.plant.ConfigIssuingCas().empty(); }));
  BOOST_TEST(s.plant.ConfigIssuingCas().back().empty());

  const std::string certificate = s.root.Sign(csr, challenge);
  auto installed = s.Install(request_id, certificate);
  BOOST_REQUIRE_MESSAGE(installed.ok(), installed.status().ToString());
  BOOST_TEST((*installed)["state"] == "active");
  BOOST_TEST(s.Install(request_id, certificate).ok());  // the same again: OK, nothing new
  BOOST_REQUIRE(WaitFor([&] { return s.plant.ConfigIssuingCas().back() == std::vector<std::string>{"plant-ca/acme/1"}; }));
  const size_t configs = s.plant.ConfigVersions().size();
  // The OEM CA cannot be swapped under an active plant CA.
  BOOST_TEST((s.ImportOemCa(stranger.certificate).status().code() == StatusCode::kFailedPrecondition));
  BOOST_TEST(s.KmsStatus()["plants"][0]["issuing_cas"][0]["state"] == "active");

  // It survives a restart.
  s.plant.Disconnect();
  s.Close();
  s.Open();
  BOOST_TEST((*s.Issue())["state"] == "active");

  // Revoked: the next configuration lists no CA; issuing again starts a new key.
  auto revoked = s.Revoke();
  BOOST_REQUIRE_MESSAGE(revoked.ok(), revoked.status().ToString());
  BOOST_TEST((*revoked)["state"] == "revoked");
  BOOST_TEST((s.Revoke().status().code() == StatusCode::kNotFound));
  s.plant.Connect(s.kms->link_endpoint(), s.kms->curve_public_key());
  BOOST_REQUIRE(WaitFor([&] { return s.plant.ConfigVersions().size() > configs; }));
  BOOST_TEST(s.plant.ConfigIssuingCas().back().empty());
  BOOST_TEST((s.Install(request_id, certificate).status().code() == StatusCode::kFailedPrecondition));
  json second = *s.Issue();
  BOOST_TEST(second["generation"] == 2);
  BOOST_TEST(second["key_name"] == "plant-ca/acme/2");
  BOOST_TEST(second["state"] == "requested");
  auto audit = s.kms->VerifyAudit();
  BOOST_REQUIRE(audit.ok());
  BOOST_TEST(audit->intact);
}

// The issuing budget: the policy travels with the plant's CA; the KMS grants at most what keeps
// the certificates granted and not yet seen in a record within the target, so records are what
// replenish it; a repeated request gets the same grant; it all survives a restart.
BOOST_AUTO_TEST_CASE(IssuingBudgetIsGrantedWithinTargetAndReplenishedByRecords) {
  CaSetup s;
  s.ActivateCa();
  BOOST_REQUIRE(WaitFor([&] { return !s.plant.ConfigBudgets().empty() && s.plant.ConfigBudgets().back().second > 0; }));
  BOOST_TEST((s.plant.ConfigBudgets().back() == std::pair<uint32_t, uint32_t>{250, 1000}));
  BOOST_TEST(s.PlantBudget()["granted"] == 0);

  BOOST_TEST((s.SetBudget(6, 5).status().code() == StatusCode::kInvalidArgument));
  BOOST_TEST((s.SetBudget(2, 5, "plant-x").status().code() == StatusCode::kNotFound));
  auto set = s.SetBudget(2, 5);
  BOOST_REQUIRE_MESSAGE(set.ok(), set.status().ToString());
  BOOST_REQUIRE(WaitFor([&] { return s.plant.ConfigBudgets().back() == std::pair<uint32_t, uint32_t>{2, 5}; }));

  BOOST_REQUIRE(s.AskBudget("r1", 5).ok());
  BOOST_TEST((s.AskBudget("r0", 5, "nobody").code() == StatusCode::kNotFound));
  BOOST_REQUIRE(s.AskBudget("r2", 3).ok());  // 5 outstanding already: nothing more
  BOOST_REQUIRE(s.AskBudget("r1", 5).ok());  // asked again: the same grant again
  BOOST_REQUIRE(WaitFor([&] { return s.plant.BudgetGrants().size() == 3; }));
  auto grants = s.plant.BudgetGrants();
  BOOST_TEST(grants[0].request_id == "r1");
  BOOST_TEST(grants[0].grant_id == "plant-a/acme/1");
  BOOST_TEST(grants[0].plant == "plant-a");
  BOOST_TEST(grants[0].count == 5u);
  BOOST_TEST(grants[1].grant_id == "plant-a/acme/2");
  BOOST_TEST(grants[1].count == 0u);
  BOOST_TEST(grants[2].grant_id == "plant-a/acme/1");
  BOOST_TEST(grants[2].count == 5u);
  BOOST_TEST(s.PlantBudget()["granted"] == 5);
  BOOST_TEST(s.PlantBudget()["outstanding"] == 5);

  // Two records report certificates: two more may be granted.
  BOOST_REQUIRE(s.kms->ImportBatchFile(s.oem.Batch(s, "c", 3), "admin").ok());
  s.plant.RequestStock("s1", "bcm", 3);
  BOOST_REQUIRE(WaitFor([&] { return s.plant.Shipped().size() == 3; }));
  const auto shipped = s.plant.Shipped();
  const uint16_t kRecord = static_cast<uint16_t>(wire::MessageType::InjectionRecord);
  for (uint64_t n = 1; n <= 2; ++n) {
    std::array<uint8_t, 15> uid{};
    uid[14] = static_cast<uint8_t>(n);
    s.plant.Send("records", kRecord,
                 s.plant.MakeRecord(n, shipped[n - 1], kLayout, uid, true, nullptr,
                                    "-----BEGIN CERTIFICATE-----\necu\n"));
  }
  std::array<uint8_t, 15> uid3{};
  uid3[14] = 3;
  s.plant.Send("records", kRecord, s.plant.MakeRecord(3, shipped[2], kLayout, uid3, false));  // none
  BOOST_REQUIRE(WaitFor([&] { return s.KmsStatus()["plants"][0]["records_received"] == 3; }));
  BOOST_TEST(s.PlantBudget()["recorded"] == 2);
  BOOST_REQUIRE(s.AskBudget("r3", 4).ok());
  BOOST_REQUIRE(WaitFor([&] { return s.plant.BudgetGrants().size() == 4; }));
  BOOST_TEST(s.plant.BudgetGrants()[3].count == 2u);
  BOOST_TEST(s.plant.BudgetGrants()[3].grant_id == "plant-a/acme/3");

  // The plant's own view arrives in its PlantStatus and shows in the KMS status, with an alert
  // when it is spent.
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<flatbuffers::Offset<wire::CertificateBudgetLevel>> levels = {
      wire::CreateCertificateBudgetLevelDirect(fbb, "acme", 7, 5, 2, 4)};
  fbb.Finish(wire::CreatePlantStatusDirect(fbb, "plant-a", 3, nullptr, nullptr, &levels));
  auto status_bytes = schemas::FinishedBytes(fbb);
  std::vector<std::vector<uint8_t>> payloads = {{status_bytes.begin(), status_bytes.end()}};
  BOOST_REQUIRE(s.kms->ApplyFromPlant("plant-a", static_cast<uint16_t>(wire::MessageType::PlantStatus), payloads).ok());
  BOOST_TEST(s.PlantBudget()["at_plant"]["available"] == 0);
  bool alerted = false;
  const json status = s.KmsStatus();
  for (const auto& alert : status["alerts"]) {
    alerted |= alert.get<std::string>().find("issuing budget of acme is spent") != std::string::npos;
  }
  BOOST_TEST(alerted);

  s.plant.Disconnect();
  s.Close();
  s.Open();
  json budget = s.PlantBudget();
  BOOST_TEST(budget["granted"] == 7);
  BOOST_TEST(budget["recorded"] == 2);
  BOOST_TEST(budget["outstanding"] == 5);
  BOOST_TEST(budget["min"] == 2);
  BOOST_TEST(budget["target"] == 5);
  BOOST_REQUIRE(s.AskBudget("r3", 4).ok());  // a repeat after the restart: still the same grant
  auto audit = s.kms->VerifyAudit();
  BOOST_REQUIRE(audit.ok());
  BOOST_TEST(audit->intact);
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
}  // namespace keyline::kms::testing
