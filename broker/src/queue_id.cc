#include "keyline/broker/queue_id.h"

namespace keyline::broker {

Status ValidateName(std::string_view what, std::string_view name) {
  if (name.empty() || name.size() > 64) {
    return InvalidArgumentError(std::string(what) + " '" + std::string(name) +
                                "' must be 1 to 64 characters long");
  }
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) {
      return InvalidArgumentError(std::string(what) + " '" + std::string(name) +
                                  "' may contain only letters, digits, '.', '_' and '-'");
    }
  }
  return Status::Ok();
}

StatusOr<QueueId> QueueId::Parse(std::string_view text) {
  size_t slash = text.find('/');
  if (slash == std::string_view::npos) {
    return InvalidArgumentError("queue '" + std::string(text) + "' must be written peer/stream");
  }
  QueueId id{std::string(text.substr(0, slash)), std::string(text.substr(slash + 1))};
  RETURN_IF_ERROR(ValidateName("peer", id.peer));
  RETURN_IF_ERROR(ValidateName("stream", id.stream));
  return id;
}

}  // namespace keyline::broker
