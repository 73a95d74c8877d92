// What keylinectl's KMS commands share: building an AdminRequest, asking the KMS, printing the
// answer as text or JSON, and turning a failed command into its exit status.
#pragma once

#include <cstdint>
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <flatbuffers/flatbuffers.h>
#include <nlohmann/json.hpp>

#include "command.h"
#include "keyline/common/status.h"
#include "keyline/wire/admin_generated.h"
#include "kms_client.h"

namespace keyline::keylinectl {

// The finished AdminRequest holding `command`.
std::vector<uint8_t> Finish(flatbuffers::FlatBufferBuilder& fbb, wire::AdminCommand type,
                            flatbuffers::Offset<void> command);

// Runs a command body: usage errors exit 2, everything else that fails exits 1.
struct Runner {
  CommandContext& context;
  template <typename F>
  void operator()(F body) {
    Status status = body();
    if (status.ok()) return;
    const bool usage = status.code() == StatusCode::kInvalidArgument || status.code() == StatusCode::kOutOfRange;
    context.Fail(usage && local_ ? kExitUsage : kExitFailed, status.message());
  }
  bool local_ = true;
};

// A KMS answer: refusals are exit 1 even when the KMS calls them INVALID_ARGUMENT.
Status Remote(Status status);

StatusOr<AdminAnswer> Ask(const KmsConnection& connection, std::span<const uint8_t> request,
                          int timeout_ms = 30000);

// `j` on one line with --json, else `text`.
void Print(std::ostream& out, bool as_json, const nlohmann::json& j, const std::string& text);

// "a, b, c" from a JSON list of strings; "none" when empty.
std::string Join(const nlohmann::json& list);

}  // namespace keyline::keylinectl
