#include "keyline/schemas/json.h"

#include <flatbuffers/minireflect.h>

#include "keyline/common/hex.h"
#include "keyline/schemas/message_types.h"

namespace keyline::schemas {
namespace {

// Fields whose bytes are key material wrapped for a peer: shown by size only.
bool IsSealed(const char* name) { return name != nullptr && std::string_view(name) == "wrapped"; }

// minireflect's JSON-ish printer with quoted names, and byte vectors collapsed to one string.
class JsonVisitor : public flatbuffers::ToStringVisitor {
 public:
  JsonVisitor() : flatbuffers::ToStringVisitor("", /*quotes=*/true, "", /*vdelimited=*/false) {}

  void Field(size_t field_idx, size_t set_idx, flatbuffers::ElementaryType type, bool is_vector,
             const flatbuffers::TypeTable* type_table, const char* name,
             const uint8_t* val) override {
    ToStringVisitor::Field(field_idx, set_idx, type, is_vector, type_table, name, val);
    pending_bytes_ = val != nullptr && is_vector && type == flatbuffers::ET_UCHAR;
    pending_sealed_ = IsSealed(name);
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
  }
  void EndVector() override {
    if (in_bytes_) {
      in_bytes_ = false;
      s += pending_sealed_ ? "\"<sealed, " + std::to_string(bytes_.size()) + " bytes>\""
                           : "\"" + ToHex(bytes_) + "\"";
      return;
    }
    ToStringVisitor::EndVector();
  }

 private:
  bool pending_bytes_ = false;
  bool pending_sealed_ = false;
  bool in_bytes_ = false;
  std::vector<uint8_t> bytes_;
};

template <typename T>
std::string ToJson(std::span<const uint8_t> payload) {
  JsonVisitor visitor;
  flatbuffers::IterateFlatBuffer(payload.data(), T::MiniReflectTypeTable(), &visitor);
  return visitor.s;
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
  }
  return "null";
}

}  // namespace keyline::schemas
