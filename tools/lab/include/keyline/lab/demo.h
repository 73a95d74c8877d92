// keyline-lab demo: the story a new user should see first, told with the lab's own commands.
//
// Up (two plants, two stations each); ECUs provisioned in both plants; plant B cut off from the
// KMS, and it keeps provisioning from local stock while its records queue; reconnected, its
// backlog drains and its stock refills; the OEM's verification file requested, exported and
// checked with the OEM's own keys; a summary table; down. Each step checks its outcome, so a
// demo that does not tell the story fails (exit 1) saying which part did not happen.
#pragma once

#include <filesystem>
#include <iosfwd>

#include "keyline/common/status.h"

namespace keyline::lab {

// Runs the demo in `workdir` (empty: a new directory under $TMPDIR, named in the output). The
// directory keeps lab.json, the logs, oem-secrets.jsonl and verification.jsonl(.sig).
[[nodiscard]] Status RunDemo(const std::filesystem::path& workdir, std::ostream& out);

}  // namespace keyline::lab
