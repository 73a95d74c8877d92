#include "keyline/schemas/fields.h"

#include <string>

namespace keyline::schemas {

std::span<const uint8_t> Bytes(const flatbuffers::Vector<uint8_t>* field) {
  if (field == nullptr) return {};
  return {field->data(), field->size()};
}

std::string_view Text(const flatbuffers::String* field) {
  if (field == nullptr) return {};
  return {field->c_str(), field->size()};
}

Status CheckFixedBytes(const flatbuffers::Vector<uint8_t>* field, size_t expected,
                       std::string_view what) {
  if (field == nullptr) {
    return InvalidArgumentError(std::string(what) + ": missing (expected " +
                                std::to_string(expected) + " bytes)");
  }
  if (field->size() != expected) {
    return InvalidArgumentError(std::string(what) + ": expected " + std::to_string(expected) +
                                " bytes, got " + std::to_string(field->size()));
  }
  return Status::Ok();
}

}  // namespace keyline::schemas
