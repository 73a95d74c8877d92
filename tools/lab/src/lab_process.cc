#include "lab_process.h"

namespace keyline::lab {

Status SpawnLabProcess(LabProcess& process, uint64_t& log_offset) {
  log_offset = FileSize(process.log_file);
  ProcessSpec spec{process.name, process.argv, process.cwd, process.env, process.log_file};
  ASSIGN_OR_RETURN(process.identity, StartProcess(spec));
  return Status::Ok();
}

Status AwaitLabProcess(const LabProcess& process, uint64_t log_offset, std::chrono::milliseconds timeout) {
  return WaitForLogLine(process.name, process.identity, process.log_file, log_offset, process.ready_text, timeout);
}

StatusOr<LabProcess*> FindLabProcess(LabState& state, const std::string& name) {
  if (LabProcess* p = state.FindProcess(name)) return p;
  std::string names;
  for (const auto& p : state.processes) names += (names.empty() ? "" : ", ") + p.name;
  return NotFoundError("no process " + name + " in this lab (there are: " + names + ")");
}

StatusOr<LabPlant*> FindLabPlant(LabState& state, const std::string& plant) {
  if (LabPlant* p = state.FindPlant(plant)) return p;
  std::string names;
  for (const auto& p : state.plants) names += (names.empty() ? "" : ", ") + p.plant;
  return NotFoundError("no plant " + plant + " in this lab (there are: " + names + ")");
}

}  // namespace keyline::lab
