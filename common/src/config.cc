#include "keyline/common/config.h"

#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include <toml++/toml.h>

namespace keyline {

// State shared by a top-level reader and every Section/TableArray reader made from it.
struct ConfigReader::Shared {
  std::string source;
  toml::table root;
  Status first_error;
  std::set<std::string> consumed;  // joined paths of every key and table asked for
};

namespace {

std::string Join(const std::vector<std::string>& path, std::string_view key = {}) {
  std::string out;
  for (const auto& part : path) {
    if (!out.empty()) out += '.';
    out += part;
  }
  if (!key.empty()) {
    if (!out.empty()) out += '.';
    out += key;
  }
  return out;
}

// Array elements are stored in paths as "#<index>"; people see them numbered from 1.
std::string Display(const std::vector<std::string>& path) {
  std::string out;
  for (const auto& part : path) {
    if (!out.empty()) out += '.';
    out += part[0] == '#' ? std::to_string(std::stoul(part.substr(1)) + 1) : part;
  }
  return out;
}

const char* TypeName(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a number";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::array: return "an array";
    case toml::node_type::table: return "a table";
    default: return "a date or time";
  }
}

}  // namespace

std::filesystem::path ResolveConfigPath(const std::filesystem::path& base_dir,
                                        const std::string& path) {
  if (path.empty()) return {};
  std::filesystem::path p(path);
  return p.is_absolute() ? p : base_dir / p;
}

ConfigReader::ConfigReader(std::shared_ptr<Shared> shared, std::vector<std::string> path)
    : shared_(std::move(shared)), path_(std::move(path)) {}

StatusOr<ConfigReader> ConfigReader::Parse(std::string_view text, std::string source) {
  auto shared = std::make_shared<Shared>();
  shared->source = std::move(source);
  try {
    shared->root = toml::parse(text, shared->source);
  } catch (const toml::parse_error& e) {
    std::ostringstream message;
    message << shared->source << ":" << e.source().begin.line << ":" << e.source().begin.column
            << ": " << e.description();
    return InvalidArgumentError(message.str());
  }
  return ConfigReader(std::move(shared), {});
}

StatusOr<ConfigReader> ConfigReader::Load(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return NotFoundError(path.string() + ": configuration file not found");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return PermissionDeniedError(path.string() + ": cannot be read");
  std::stringstream text;
  text << in.rdbuf();
  return Parse(text.str(), path.string());
}

const std::string& ConfigReader::source() const { return shared_->source; }

std::string ConfigReader::Where() const {
  return path_.empty() ? std::string() : "[" + Display(path_) + "] ";
}

const void* ConfigReader::Lookup(std::string_view key) const {
  shared_->consumed.insert(Join(path_, key));
  const toml::node* node = &shared_->root;
  std::vector<std::string> full = path_;
  full.emplace_back(key);
  for (const auto& part : full) {
    if (node == nullptr) return nullptr;
    if (part[0] == '#') {
      const toml::array* array = node->as_array();
      size_t index = std::stoul(part.substr(1));
      node = (array != nullptr && index < array->size()) ? array->get(index) : nullptr;
    } else {
      const toml::table* table = node->as_table();
      node = table != nullptr ? table->get(part) : nullptr;
    }
  }
  return node;
}

void ConfigReader::Fail(std::string_view key, std::string_view problem) const {
  if (!shared_->first_error.ok()) return;
  shared_->first_error = InvalidArgumentError(shared_->source + ": " + Where() +
                                              std::string(key) + " " + std::string(problem));
}

bool ConfigReader::Has(std::string_view key) const { return Lookup(key) != nullptr; }

ConfigReader ConfigReader::Section(std::string_view name) const {
  const auto* node = static_cast<const toml::node*>(Lookup(name));
  if (node != nullptr && !node->is_table()) {
    Fail(name, std::string("must be a table, not ") + TypeName(*node));
  }
  std::vector<std::string> path = path_;
  path.emplace_back(name);
  return ConfigReader(shared_, std::move(path));
}

bool ConfigReader::HasSection(std::string_view name) const {
  const auto* node = static_cast<const toml::node*>(Lookup(name));
  return node != nullptr && node->is_table();
}

std::vector<ConfigReader> ConfigReader::TableArray(std::string_view name) const {
  std::vector<ConfigReader> out;
  const auto* node = static_cast<const toml::node*>(Lookup(name));
  if (node == nullptr) return out;
  const toml::array* array = node->as_array();
  if (array == nullptr || !array->is_array_of_tables()) {
    Fail(name, "must be an array of tables ([[" + std::string(name) + "]])");
    return out;
  }
  for (size_t i = 0; i < array->size(); ++i) {
    std::vector<std::string> path = path_;
    path.emplace_back(name);
    path.push_back("#" + std::to_string(i));
    shared_->consumed.insert(Join(path));
    out.push_back(ConfigReader(shared_, std::move(path)));
  }
  return out;
}

std::string ConfigReader::RequireString(std::string_view key) const {
  const auto* node = static_cast<const toml::node*>(Lookup(key));
  if (node == nullptr) {
    Fail(key, "is missing");
    return {};
  }
  if (!node->is_string()) {
    Fail(key, std::string("must be a string, not ") + TypeName(*node));
    return {};
  }
  return std::string(node->as_string()->get());
}

std::string ConfigReader::OptionalString(std::string_view key, std::string fallback) const {
  if (!Has(key)) return fallback;
  return RequireString(key);
}

int64_t ConfigReader::RequireInt(std::string_view key, int64_t min, int64_t max) const {
  const auto* node = static_cast<const toml::node*>(Lookup(key));
  if (node == nullptr) {
    Fail(key, "is missing");
    return min;
  }
  if (!node->is_integer()) {
    Fail(key, std::string("must be an integer, not ") + TypeName(*node));
    return min;
  }
  int64_t value = node->as_integer()->get();
  if (value < min || value > max) {
    Fail(key, "= " + std::to_string(value) + " is out of range " + std::to_string(min) + ".." +
                  std::to_string(max));
    return min;
  }
  return value;
}

int64_t ConfigReader::OptionalInt(std::string_view key, int64_t fallback, int64_t min,
                                  int64_t max) const {
  if (!Has(key)) return fallback;
  return RequireInt(key, min, max);
}

double ConfigReader::OptionalDouble(std::string_view key, double fallback, double min,
                                    double max) const {
  const auto* node = static_cast<const toml::node*>(Lookup(key));
  if (node == nullptr) return fallback;
  double value = 0;
  if (node->is_floating_point()) {
    value = node->as_floating_point()->get();
  } else if (node->is_integer()) {
    value = static_cast<double>(node->as_integer()->get());
  } else {
    Fail(key, std::string("must be a number, not ") + TypeName(*node));
    return fallback;
  }
  if (!(value >= min && value <= max)) {
    Fail(key, "= " + std::to_string(value) + " is out of range " + std::to_string(min) + ".." +
                  std::to_string(max));
    return fallback;
  }
  return value;
}

bool ConfigReader::OptionalBool(std::string_view key, bool fallback) const {
  const auto* node = static_cast<const toml::node*>(Lookup(key));
  if (node == nullptr) return fallback;
  if (!node->is_boolean()) {
    Fail(key, std::string("must be true or false, not ") + TypeName(*node));
    return fallback;
  }
  return node->as_boolean()->get();
}

std::vector<std::string> ConfigReader::OptionalStringList(std::string_view key) const {
  std::vector<std::string> out;
  const auto* node = static_cast<const toml::node*>(Lookup(key));
  if (node == nullptr) return out;
  const toml::array* array = node->as_array();
  if (array == nullptr) {
    Fail(key, std::string("must be an array of strings, not ") + TypeName(*node));
    return out;
  }
  for (const auto& element : *array) {
    if (!element.is_string()) {
      Fail(key, "must contain only strings");
      return {};
    }
    out.emplace_back(element.as_string()->get());
  }
  return out;
}

std::string ConfigReader::RequireChoice(std::string_view key,
                                        const std::vector<std::string>& choices) const {
  std::string value = RequireString(key);
  if (!shared_->first_error.ok()) return value;
  for (const auto& choice : choices) {
    if (value == choice) return value;
  }
  std::string allowed;
  for (const auto& choice : choices) allowed += (allowed.empty() ? "" : "|") + choice;
  Fail(key, "= \"" + value + "\" is not one of " + allowed);
  return value;
}

std::string ConfigReader::RequireEndpoint(std::string_view key, std::string_view example) const {
  std::string value = RequireString(key);
  if (!shared_->first_error.ok()) return value;
  for (std::string_view scheme : {"tcp://", "ipc://", "inproc://"}) {
    if (value.rfind(scheme, 0) == 0 && value.size() > scheme.size()) return value;
  }
  Fail(key, "= \"" + value + "\" must be a ZeroMQ endpoint such as " + std::string(example));
  return value;
}

Status ConfigReader::Finish() const {
  if (!shared_->first_error.ok()) return shared_->first_error;
  // Walk every key in the file in document order; the first one nobody asked for is a typo.
  std::string unknown;
  std::function<void(const toml::table&, std::vector<std::string>&)> walk =
      [&](const toml::table& table, std::vector<std::string>& path) {
        for (const auto& [name, node] : table) {
          if (!unknown.empty()) return;
          std::string key(name.str());
          if (!shared_->consumed.contains(Join(path, key))) {
            std::string section = path.empty() ? "" : "[" + Display(path) + "] ";
            unknown = node.is_table() ? "unknown section [" + Join(path, key) + "]"
                                      : "unknown setting " + section + key;
            return;
          }
          path.push_back(key);
          if (const toml::table* child = node.as_table()) {
            walk(*child, path);
          } else if (const toml::array* array = node.as_array();
                     array != nullptr && array->is_array_of_tables()) {
            for (size_t i = 0; i < array->size() && unknown.empty(); ++i) {
              path.push_back("#" + std::to_string(i));
              walk(*array->get(i)->as_table(), path);
              path.pop_back();
            }
          }
          path.pop_back();
        }
      };
  std::vector<std::string> path;
  walk(shared_->root, path);
  if (!unknown.empty()) {
    return InvalidArgumentError(shared_->source + ": " + unknown +
                                " (misspelt, or not a setting of this program)");
  }
  return Status::Ok();
}

}  // namespace keyline
