#include "keyline/lab/lab_layout.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <sstream>

namespace keyline::lab {
namespace {

namespace fs = std::filesystem;

std::string Loopback(int port) { return "tcp://127.0.0.1:" + std::to_string(port); }

// A path as written in a config file: relative to the file's directory.
std::string Relative(const fs::path& file, const fs::path& config) {
  return fs::relative(file, config.parent_path()).string();
}

}  // namespace

fs::path LabLayout::LogFile(const std::string& process) const { return logs_dir / (process + ".log"); }

StatusOr<std::vector<int>> PickFreeLoopbackPorts(size_t count) {
  std::vector<int> sockets;
  std::vector<int> ports;
  std::set<int> seen;
  Status status;
  while (ports.size() < count) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      status = UnavailableError(std::string("cannot find a free port on 127.0.0.1: ") + std::strerror(errno));
      if (fd >= 0) close(fd);
      break;
    }
    sockets.push_back(fd);
    const int port = ntohs(address.sin_port);
    if (seen.insert(port).second) ports.push_back(port);
  }
  for (int fd : sockets) close(fd);
  if (!status.ok()) return status;
  return ports;
}

StatusOr<LabLayout> PlanLab(const LabOptions& options) {
  if (options.workdir.empty()) return InvalidArgumentError("--workdir is required");
  if (options.plants < 1 || options.plants > 26) return OutOfRangeError("--plants must be 1..26");
  if (options.stations < 0 || options.stations > 9) return OutOfRangeError("--stations must be 0..9");
  if (options.key_sets == 0) return OutOfRangeError("--key-sets must be at least 1");
  if (options.min_stock == 0 || options.target_stock < options.min_stock) {
    return OutOfRangeError("the stock quota needs 0 < min-stock <= target-stock");
  }
  const size_t port_count = 2 + static_cast<size_t>(options.plants) * (3 + static_cast<size_t>(options.stations));
  ASSIGN_OR_RETURN(std::vector<int> ports, PickFreeLoopbackPorts(port_count));
  size_t next_port = 0;
  auto port = [&] { return ports[next_port++]; };

  LabLayout lab;
  lab.options = options;
  lab.workdir = fs::absolute(options.workdir).lexically_normal();
  if (lab.workdir.filename().empty()) lab.workdir = lab.workdir.parent_path();
  lab.logs_dir = lab.workdir / "logs";
  lab.transport_key = lab.workdir / "transport.key";
  lab.oem_dir = lab.workdir / "oem";
  lab.oem_key = lab.oem_dir / (options.oem + ".oemkey");
  lab.batch_file = lab.oem_dir / (options.product + "-batch-1.klb");
  lab.oem_secrets = lab.workdir / "oem-secrets.jsonl";
  lab.oem_ca_dir = lab.oem_dir / "ca";
  lab.oem_ca_certificate = lab.workdir / "oem-ca.pem";
  lab.keylinectl_env_file = lab.workdir / "keylinectl.env";
  lab.kms_dir = lab.workdir / "kms";
  lab.kms_config = lab.kms_dir / "kms.toml";
  lab.kms_data_dir = lab.kms_dir / "data";
  lab.kms_master_key = lab.kms_dir / "kms-master.key";
  lab.kms_curve_public = lab.kms_dir / "kms.curve.pub";
  lab.admin_key = lab.kms_dir / "admin.key";
  lab.kms_link_endpoint = Loopback(port());
  lab.kms_admin_endpoint = Loopback(port());
  lab.transport_key_ref = options.oem + "-transport";
  for (int i = 0; i < options.plants; ++i) {
    PlantLayout p;
    p.letter = std::string(1, static_cast<char>('a' + i));
    p.plant = "plant-" + p.letter;
    p.dir = lab.workdir / p.plant;
    p.relay = "relay-" + p.letter;
    p.pks = "pks-" + p.letter;
    if (options.stations > 0) p.ecu_sim = "ecu-sim-" + p.letter;
    p.relay_endpoint = Loopback(port());
    p.pks_config = p.dir / "pks.toml";
    p.pks_curve_key = p.dir / "pks.curve";
    p.pks_curve_public = p.dir / "pks.curve.pub";
    p.pks_master_key = p.dir / "pks-master.key";
    p.pks_data_dir = p.dir / "pks-data";
    p.pks_endpoint = Loopback(port());
    p.ecu_sim_config = p.dir / "ecu-sim.toml";
    p.ecu_sim_curve_key = p.dir / "ecu-sim.curve";
    p.ecu_sim_curve_public = p.dir / "ecu-sim.curve.pub";
    p.ecu_sim_state_key = p.dir / "ecu-sim-state.key";
    p.ecu_sim_data_dir = p.dir / "ecu-sim-data";
    p.ecu_endpoint = Loopback(port());
    for (int s = 1; s <= options.stations; ++s) {
      StationLayout st;
      const std::string n = std::to_string(s);
      st.station = p.plant + "-eol-" + n;
      st.injector = "injector-" + p.letter + n;
      st.config = p.dir / ("injector-" + n + ".toml");
      st.curve_key = p.dir / ("injector-" + n + ".curve");
      st.curve_public = p.dir / ("injector-" + n + ".curve.pub");
      st.tester_key = p.dir / ("eol-tester-" + n + ".curve");
      st.data_dir = p.dir / ("injector-" + n + "-data");
      st.eol_endpoint = Loopback(port());
      p.stations.push_back(std::move(st));
    }
    lab.plants.push_back(std::move(p));
  }
  return lab;
}

std::string KmsConfigText(const LabLayout& lab, const std::string& admin_public_z85) {
  std::ostringstream t;
  t << "# The lab's KMS (docs/kms.md), written by keyline-lab up.\n"
    << "[kms]\n"
    << "data_dir = \"" << Relative(lab.kms_data_dir, lab.kms_config) << "\"\n"
    << "link_bind = \"" << lab.kms_link_endpoint << "\"      # the plants, through their relays\n"
    << "admin_bind = \"" << lab.kms_admin_endpoint << "\"     # keylinectl\n"
    << "curve_key_file = \"kms.curve\"\n"
    << "admin_keys = [\"" << admin_public_z85 << "\"]   # " << Relative(lab.admin_key, lab.kms_config) << "\n"
    << "heartbeat_interval_ms = 1000\n"
    << "heartbeat_timeout_ms = 5000\n\n"
    << "[hsm]\n"
    << "backend = \"software\"\n"
    << "master_key_file = \"" << Relative(lab.kms_master_key, lab.kms_config) << "\"\n\n"
    << "[log]\n"
    << "level = \"info\"\n";
  return t.str();
}

std::string PksConfigText(const LabLayout& lab, const PlantLayout& plant) {
  const fs::path& f = plant.pks_config;
  std::ostringstream t;
  t << "# The PKS of " << plant.plant << " (docs/pks.md), written by keyline-lab up.\n"
    << "data_dir = \"" << Relative(plant.pks_data_dir, f) << "\"\n\n"
    << "[log]\nlevel = \"info\"\n\n"
    << "[plant]\nid = \"" << plant.plant << "\"\n\n"
    << "[hsm]\nbackend = \"software\"\n"
    << "master_key_file = \"" << Relative(plant.pks_master_key, f) << "\"\n\n"
    << "[kms]\n"
    << "# The KMS link goes through the lab's relay " << plant.relay
    << " (keyline-lab cut/reconnect), which forwards to " << lab.kms_link_endpoint << ".\n"
    << "connect = \"" << plant.relay_endpoint << "\"\n"
    << "curve_public_key_file = \"" << Relative(lab.kms_curve_public, f) << "\"\n\n"
    << "[link]\n"
    << "listen = \"" << plant.pks_endpoint << "\"    # the plant's injectors\n"
    << "curve_key_file = \"" << Relative(plant.pks_curve_key, f) << "\"\n\n"
    << "[sync]\nmode = \"continuous\"\n";
  return t.str();
}

std::string EcuSimConfigText(const LabLayout& lab, const PlantLayout& plant) {
  const fs::path& f = plant.ecu_sim_config;
  std::ostringstream t;
  t << "# The simulated ECUs of " << plant.plant << " (docs/ecu-sim.md), written by keyline-lab up.\n"
    << "data_dir = \"" << Relative(plant.ecu_sim_data_dir, f) << "\"\n\n"
    << "[log]\nlevel = \"info\"\n\n"
    << "[ecu]\n"
    << "listen = \"" << plant.ecu_endpoint << "\"\n"
    << "curve_key_file = \"" << Relative(plant.ecu_sim_curve_key, f) << "\"\n"
    << "transport_key_file = \"" << Relative(lab.transport_key, f) << "\"   # factory MASTER_ECU_KEY\n"
    << "state_key_file = \"" << Relative(plant.ecu_sim_state_key, f) << "\"\n";
  for (const auto& st : plant.stations) {
    t << "\n[[client]]\n"
      << "id = \"" << st.station << "\"\n"
      << "curve_public_key_file = \"" << Relative(st.curve_public, f) << "\"\n";
  }
  return t.str();
}

std::string InjectorConfigText(const PlantLayout& plant, const StationLayout& station) {
  const fs::path& f = station.config;
  std::ostringstream t;
  t << "# The injector of station " << station.station << ", written by keyline-lab up.\n"
    << "data_dir = \"" << Relative(station.data_dir, f) << "\"\n\n"
    << "[log]\nlevel = \"info\"\n\n"
    << "[station]\n"
    << "id = \"" << station.station << "\"\n"
    << "curve_key_file = \"" << Relative(station.curve_key, f) << "\"\n\n"
    << "[pks]\n"
    << "plant = \"" << plant.plant << "\"\n"
    << "connect = \"" << plant.pks_endpoint << "\"\n"
    << "curve_public_key_file = \"" << Relative(plant.pks_curve_public, f) << "\"\n\n"
    << "[ecu]\n"
    << "backend = \"simulator\"\n"
    << "connect = \"" << plant.ecu_endpoint << "\"\n"
    << "curve_public_key_file = \"" << Relative(plant.ecu_sim_curve_public, f) << "\"\n\n"
    << "[eol]\n"
    << "listen = \"" << station.eol_endpoint << "\"\n"
    << "tester_curve_key_file = \"" << Relative(station.tester_key, f) << "\"\n";
  return t.str();
}

}  // namespace keyline::lab
