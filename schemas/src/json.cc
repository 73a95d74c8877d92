#include "keyline/schemas/json.h"

#include <flatbuffers/minireflect.h>

#include <vector>

#include "keyline/common/hex.h"
#include "keyline/schemas/decode.h"
#include "keyline/schemas/message_types.h"

namespace keyline::schemas {
namespace {

// Fields whose bytes are key material wrapped for a peer: shown by size only.
bool IsSealed(const char* name) { return name != nullptr && std::string_view(name) == "wrapped"; }

// A [ubyte] field that holds a FlatBuffer of its own (`nested_flatbuffer` in the schema).
// minireflect's type tables do not record that attribute, so the fields are listed here.
struct NestedField {
  const flatbuffers::TypeTable* (*parent)();  // the table that has the field
  const char* name;
  const flatbuffers::TypeTable* (*nested)();  // the table the bytes hold
  bool (*verifies)(std::span<const uint8_t>);
};

template <typename T>
bool Verifies(std::span<const uint8_t> bytes) {
  return DecodeVerified<T>(bytes, "nested FlatBuffer").ok();
}

constexpr NestedField kNestedFields[] = {
    {&wire::InjectionRecordTypeTable, "body", &wire::InjectionRecordBodyTypeTable,
     &Verifies<wire::InjectionRecordBody>},
};

std::string ToJson(std::span<const uint8_t> buffer, const flatbuffers::TypeTable* root);

// minireflect's JSON-ish printer with quoted names, and byte vectors collapsed to one string.
// A nested FlatBuffer prints as a nested object once it passes the Verifier on its own (the
// caller's Verifier may have been told to skip nested buffers); one that does not verify prints
// as {"error": "body does not verify", "hex": "..."}.
class JsonVisitor : public flatbuffers::ToStringVisitor {
 public:
  explicit JsonVisitor(const flatbuffers::TypeTable* root)
      : flatbuffers::ToStringVisitor("", /*quotes=*/true, "", /*vdelimited=*/false),
        next_table_(root) {}

  void StartSequence() override {
    tables_.push_back(next_table_);
    next_table_ = nullptr;
    ToStringVisitor::StartSequence();
  }
  void EndSequence() override {
    if (!tables_.empty()) tables_.pop_back();
    ToStringVisitor::EndSequence();
  }
  void Field(size_t field_idx, size_t set_idx, flatbuffers::ElementaryType type, bool is_vector,
             const flatbuffers::TypeTable* type_table, const char* name,
             const uint8_t* val) override {
    ToStringVisitor::Field(field_idx, set_idx, type, is_vector, type_table, name, val);
    pending_bytes_ = val != nullptr && is_vector && type == flatbuffers::ET_UCHAR;
    pending_sealed_ = IsSealed(name);
    pending_nested_ = pending_bytes_ ? NestedFieldNamed(name) : nullptr;
    NoteTable(type, type_table);
  }
  void StartVector() override {
    if (pending_bytes_) {
      in_bytes_ = true;
      pending_bytes_ = false;
      bytes_.clear();
      return;
    }
    ToStringVisitor::StartVector();
  }
  void UChar(uint8_t x, const char* name) override {
    if (in_bytes_) {
      bytes_.push_back(x);
      return;
    }
    ToStringVisitor::UChar(x, name);
  }
  void Element(size_t i, flatbuffers::ElementaryType type, const flatbuffers::TypeTable* table,
               const uint8_t* val) override {
    if (in_bytes_) return;
    ToStringVisitor::Element(i, type, table, val);
    NoteTable(type, table);
  }
  void EndVector() override {
    if (in_bytes_) {
      in_bytes_ = false;
      if (pending_sealed_) {
        s += "\"<sealed, " + std::to_string(bytes_.size()) + " bytes>\"";
      } else if (pending_nested_ != nullptr) {
        // bytes_ is a fresh heap copy: aligned as the Verifier and the reader need.
        if (pending_nested_->verifies(bytes_)) {
          s += ToJson(bytes_, pending_nested_->nested());
        } else {
          s += std::string("{\"error\": \"") + pending_nested_->name +
               " does not verify\", \"hex\": \"" + ToHex(bytes_) + "\"}";
        }
      } else {
        s += "\"" + ToHex(bytes_) + "\"";
      }
      pending_nested_ = nullptr;
      return;
    }
    ToStringVisitor::EndVector();
  }

 private:
  // The next StartSequence opens a table of this type; unions and structs are not tracked
  // (no nested FlatBuffer lives in them).
  void NoteTable(flatbuffers::ElementaryType type, const flatbuffers::TypeTable* table) {
    next_table_ = type == flatbuffers::ET_SEQUENCE && table != nullptr &&
                          table->st == flatbuffers::ST_TABLE
                      ? table
                      : nullptr;
  }
  const NestedField* NestedFieldNamed(const char* name) const {
    if (name == nullptr || tables_.empty() || tables_.back() == nullptr) return nullptr;
    for (const NestedField& field : kNestedFields) {
      if (field.parent() == tables_.back() && std::string_view(name) == field.name) return &field;
    }
    return nullptr;
  }

  bool pending_bytes_ = false;
  bool pending_sealed_ = false;
  const NestedField* pending_nested_ = nullptr;
  bool in_bytes_ = false;
  std::vector<uint8_t> bytes_;
  const flatbuffers::TypeTable* next_table_ = nullptr;
  std::vector<const flatbuffers::TypeTable*> tables_;  // the tables being printed, innermost last
};

std::string ToJson(std::span<const uint8_t> buffer, const flatbuffers::TypeTable* root) {
  JsonVisitor visitor(root);
  flatbuffers::IterateFlatBuffer(buffer.data(), root, &visitor);
  return visitor.s;
}

template <typename T>
std::string ToJson(std::span<const uint8_t> payload) {
  return ToJson(payload, T::MiniReflectTypeTable());
}

}  // namespace

std::string PayloadToJson(wire::MessageType type, std::span<const uint8_t> payload) {
  switch (type) {
    case wire::MessageType::NONE:
      break;
    case wire::MessageType::StockBatch:
      return ToJson<wire::StockBatch>(payload);
    case wire::MessageType::ConfigUpdate:
      return ToJson<wire::ConfigUpdate>(payload);
    case wire::MessageType::VerificationRequest:
      return ToJson<wire::VerificationRequest>(payload);
    case wire::MessageType::StockRequest:
      return ToJson<wire::StockRequest>(payload);
    case wire::MessageType::InjectionRecord:
      return ToJson<wire::InjectionRecord>(payload);
    case wire::MessageType::PlantStatus:
      return ToJson<wire::PlantStatus>(payload);
    case wire::MessageType::VerificationWatermark:
      return ToJson<wire::VerificationWatermark>(payload);
    case wire::MessageType::KeyPackageRequest:
      return ToJson<wire::KeyPackageRequest>(payload);
    case wire::MessageType::KeyPackage:
      return ToJson<wire::KeyPackage>(payload);
    case wire::MessageType::InjectionResult:
      return ToJson<wire::InjectionResult>(payload);
    case wire::MessageType::AdminRequest:
      return ToJson<wire::AdminRequest>(payload);
    case wire::MessageType::AdminReply:
      return ToJson<wire::AdminReply>(payload);
    case wire::MessageType::PlantCaRequest:
      return ToJson<wire::PlantCaRequest>(payload);
    case wire::MessageType::PlantCaCsr:
      return ToJson<wire::PlantCaCsr>(payload);
    case wire::MessageType::CertificateRequest:
      return ToJson<wire::CertificateRequest>(payload);
    case wire::MessageType::CertificateIssued:
      return ToJson<wire::CertificateIssued>(payload);
    case wire::MessageType::CertificateBudgetRequest:
      return ToJson<wire::CertificateBudgetRequest>(payload);
    case wire::MessageType::CertificateBudgetGrant:
      return ToJson<wire::CertificateBudgetGrant>(payload);
  }
  return "null";
}

}  // namespace keyline::schemas
