// Starting one process of lab.json and waiting until it serves: shared by `up` and `restart`.
// Internal to the lab module.
#pragma once

#include <chrono>
#include <cstdint>

#include "keyline/common/status.h"
#include "keyline/lab/lab_state.h"

namespace keyline::lab {

// How long a lab process may take to print its ready line.
inline constexpr std::chrono::seconds kReadyTimeout{30};

// Starts `process` as lab.json describes it and records its new identity. `log_offset` is where
// its log ended before the start: its ready line is looked for after it.
[[nodiscard]] Status SpawnLabProcess(LabProcess& process, uint64_t& log_offset);

// Waits for `process`'s ready line; if it stopped first, the error quotes its log.
[[nodiscard]] Status AwaitLabProcess(const LabProcess& process, uint64_t log_offset,
                                     std::chrono::milliseconds timeout = kReadyTimeout);

// The process of `name`, or an error listing the names there are.
[[nodiscard]] StatusOr<LabProcess*> FindLabProcess(LabState& state, const std::string& name);
// The plant `plant`, or an error listing the plants there are.
[[nodiscard]] StatusOr<LabPlant*> FindLabPlant(LabState& state, const std::string& plant);

}  // namespace keyline::lab
