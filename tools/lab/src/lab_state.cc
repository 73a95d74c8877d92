#include "keyline/lab/lab_state.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <fstream>

#include <nlohmann/json.hpp>

namespace keyline::lab {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

constexpr char kFormat[] = "keyline-lab/1";

json ProcessToJson(const LabProcess& p) {
  return {{"name", p.name},
          {"role", p.role},
          {"plant", p.plant},
          {"pid", p.identity.pid},
          {"start_ticks", p.identity.start_ticks},
          {"argv", p.argv},
          {"cwd", p.cwd.string()},
          {"environment", p.env},
          {"endpoints", p.endpoints},
          {"config", p.config.string()},
          {"data_dir", p.data_dir.string()},
          {"log_file", p.log_file.string()},
          {"ready_text", p.ready_text}};
}

LabProcess ProcessFromJson(const json& j) {
  LabProcess p;
  p.name = j.at("name");
  p.role = j.at("role");
  p.plant = j.at("plant");
  p.identity.pid = j.at("pid");
  p.identity.start_ticks = j.at("start_ticks");
  p.argv = j.at("argv").get<std::vector<std::string>>();
  p.cwd = j.at("cwd").get<std::string>();
  p.env = j.at("environment").get<Environment>();
  p.endpoints = j.at("endpoints").get<std::map<std::string, std::string>>();
  p.config = j.at("config").get<std::string>();
  p.data_dir = j.at("data_dir").get<std::string>();
  p.log_file = j.at("log_file").get<std::string>();
  p.ready_text = j.at("ready_text");
  return p;
}

json StateToJson(const LabState& s) {
  json plants = json::array();
  for (const auto& plant : s.plants) {
    json stations = json::array();
    for (const auto& st : plant.stations) stations.push_back({{"station", st.station}, {"injector", st.injector}});
    plants.push_back({{"plant", plant.plant},
                      {"pks", plant.pks},
                      {"relay", plant.relay},
                      {"ecu_sim", plant.ecu_sim},
                      {"stations", stations},
                      {"cut", plant.cut}});
  }
  json processes = json::array();
  for (const auto& p : s.processes) processes.push_back(ProcessToJson(p));
  return {{"format", kFormat},
          {"workdir", s.workdir.string()},
          {"bin_dir", s.bin_dir.string()},
          {"oem", s.oem},
          {"product", s.product},
          {"transport_key_ref", s.transport_key_ref},
          {"oem_secrets", s.oem_secrets.string()},
          {"kms_signing_key", s.kms_signing_key},
          {"keylinectl_environment", s.keylinectl_env},
          {"plants", plants},
          {"processes", processes}};
}

LabState StateFromJson(const json& j) {
  LabState s;
  s.workdir = j.at("workdir").get<std::string>();
  s.bin_dir = j.at("bin_dir").get<std::string>();
  s.oem = j.at("oem");
  s.product = j.at("product");
  s.transport_key_ref = j.at("transport_key_ref");
  s.oem_secrets = j.at("oem_secrets").get<std::string>();
  s.kms_signing_key = j.at("kms_signing_key");
  s.keylinectl_env = j.at("keylinectl_environment").get<Environment>();
  for (const auto& p : j.at("plants")) {
    LabPlant plant;
    plant.plant = p.at("plant");
    plant.pks = p.at("pks");
    plant.relay = p.at("relay");
    plant.ecu_sim = p.at("ecu_sim");
    plant.cut = p.at("cut");
    for (const auto& st : p.at("stations")) plant.stations.push_back({st.at("station"), st.at("injector")});
    s.plants.push_back(std::move(plant));
  }
  for (const auto& p : j.at("processes")) s.processes.push_back(ProcessFromJson(p));
  return s;
}

// An exclusive flock on DIR/lab.lock for the lifetime of the object.
class LabLock {
 public:
  explicit LabLock(const fs::path& workdir) {
    fd_ = open((workdir / "lab.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ >= 0) flock(fd_, LOCK_EX);
  }
  ~LabLock() {
    if (fd_ >= 0) close(fd_);
  }
  LabLock(const LabLock&) = delete;
  LabLock& operator=(const LabLock&) = delete;
  bool ok() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

}  // namespace

LabProcess* LabState::FindProcess(const std::string& name) {
  for (auto& p : processes) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

const LabProcess* LabState::FindProcess(const std::string& name) const {
  return const_cast<LabState*>(this)->FindProcess(name);
}

LabPlant* LabState::FindPlant(const std::string& plant) {
  for (auto& p : plants) {
    if (p.plant == plant) return &p;
  }
  return nullptr;
}

fs::path LabFile(const fs::path& workdir) { return workdir / "lab.json"; }

StatusOr<LabState> ReadLabState(const fs::path& workdir) {
  const fs::path path = LabFile(workdir);
  std::ifstream in(path);
  if (!in) {
    return NotFoundError(path.string() + " does not exist: no lab was started in " + workdir.string() +
                         " (keyline-lab up --workdir " + workdir.string() + ")");
  }
  json j = json::parse(in, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return DataLossError(path.string() + " is not valid JSON");
  if (j.value("format", "") != kFormat) {
    return DataLossError(path.string() + ": format is not " + std::string(kFormat));
  }
  try {
    return StateFromJson(j);
  } catch (const json::exception& e) {
    return DataLossError(path.string() + ": " + e.what());
  }
}

Status WriteLabState(const LabState& state) {
  const fs::path path = LabFile(state.workdir);
  fs::path temp = path;
  temp += ".tmp";
  {
    std::ofstream out(temp, std::ios::trunc);
    out << StateToJson(state).dump(2) << '\n';
    out.close();
    if (!out) return UnavailableError(temp.string() + ": cannot write");
  }
  std::error_code ec;
  fs::rename(temp, path, ec);
  if (ec) return UnavailableError(path.string() + ": " + ec.message());
  return Status::Ok();
}

Status UpdateLabState(const fs::path& workdir, const std::function<Status(LabState&)>& change) {
  LabLock lock(workdir);
  if (!lock.ok()) return UnavailableError((workdir / "lab.lock").string() + ": cannot open");
  ASSIGN_OR_RETURN(LabState state, ReadLabState(workdir));
  RETURN_IF_ERROR(change(state));
  return WriteLabState(state);
}

}  // namespace keyline::lab
