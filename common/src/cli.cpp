#include "hyperaccel/common/cli.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <iostream>
#include <sstream>

#include "hyperaccel/common/log.h"

namespace hyperaccel::cli {
namespace {

void Flatten(const YAML::Node& node, std::vector<std::string>& parents, std::vector<CLI::ConfigItem>& out) {
  for (const auto& kv : node) {
    auto key = kv.first.as<std::string>();
    const YAML::Node& value = kv.second;
    if (value.IsMap()) {
      parents.push_back(key);
      Flatten(value, parents, out);
      parents.pop_back();
      continue;
    }
    CLI::ConfigItem item;
    item.parents = parents;
    item.name = key;
    if (value.IsSequence()) {
      for (const auto& v : value) {
        if (!v.IsScalar()) throw CLI::ConfigError("config key '" + key + "': nested lists are not supported");
        item.inputs.push_back(v.as<std::string>());
      }
    } else if (value.IsNull()) {
      item.inputs.emplace_back("");
    } else {
      item.inputs.push_back(value.as<std::string>());
    }
    out.push_back(std::move(item));
  }
}

// The option with the long name `name` in `app` or any of its subcommands.
const CLI::Option* FindLongOption(const CLI::App& app, const std::string& name) {
  for (const CLI::Option* opt : app.get_options()) {
    if (opt->check_lname(name)) return opt;
  }
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
    if (const CLI::Option* opt = FindLongOption(*sub, name)) return opt;
  }
  return nullptr;
}

bool TakesValue(const CLI::Option& opt) { return opt.get_items_expected_max() > 0; }

// True when `args` (up to a `--`) name `opt` by any of its long or short names.
bool GivenOnCommandLine(const CLI::Option& opt, const std::vector<std::string>& args) {
  for (const std::string& arg : args) {
    if (arg == "--") break;
    for (const std::string& name : opt.get_lnames()) {
      const std::string flag = "--" + name;
      if (arg == flag || arg.rfind(flag + "=", 0) == 0) return true;
    }
    for (const std::string& name : opt.get_snames()) {
      if (arg.size() >= 2 && arg[0] == '-' && arg[1] != '-' && arg.compare(1, name.size(), name) == 0)
        return true;
    }
  }
  return false;
}

}  // namespace

std::vector<std::string> NormalizeArgs(const CLI::App& app, std::vector<std::string> args,
                                       const std::function<const char*(const char*)>& getenv) {
  std::vector<std::string> out;
  for (const CLI::Option* opt : app.get_options()) {
    if (opt->get_envname().empty() || opt->get_lnames().empty()) continue;
    const char* value = getenv(opt->get_envname().c_str());
    if (value == nullptr || GivenOnCommandLine(*opt, args)) continue;
    const std::string flag = "--" + opt->get_lnames().front();
    if (!TakesValue(*opt)) {
      if (*value != '\0') out.push_back(flag + "=" + value);
    } else if (*value == '\0') {
      out.push_back(flag);
      out.emplace_back();
    } else {
      out.push_back(flag + "=" + value);
    }
  }
  bool positional_only = false;
  for (std::string& arg : args) {
    if (positional_only || arg == "--") {
      positional_only = true;
      out.push_back(std::move(arg));
      continue;
    }
    if (arg.size() > 3 && arg.compare(0, 2, "--") == 0 && arg.back() == '=' &&
        arg.find('=') == arg.size() - 1) {
      const std::string name = arg.substr(2, arg.size() - 3);
      const CLI::Option* opt = FindLongOption(app, name);
      if (opt != nullptr && TakesValue(*opt)) {
        out.push_back("--" + name);
        out.emplace_back();
        continue;
      }
    }
    out.push_back(std::move(arg));
  }
  return out;
}

int Parse(CLI::App& app, int argc, const char* const* argv) {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
  args = NormalizeArgs(app, std::move(args), [](const char* name) {
    return std::getenv(name);  // NOLINT(concurrency-mt-unsafe): read once, before any thread starts
  });
  if (argc > 0 && app.get_name().empty()) app.name(argv[0]);
  // CLI11 takes the arguments in reverse order.
  std::reverse(args.begin(), args.end());
  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return -1;
}

std::string YamlConfig::to_config(const CLI::App* app, bool default_also, bool /*write_description*/,
                                  std::string /*prefix*/) const {
  YAML::Emitter out;
  out << YAML::BeginMap;
  for (const CLI::Option* opt : app->get_options()) {
    if (opt->get_lnames().empty() || !opt->get_configurable()) continue;
    const std::string& name = opt->get_lnames().front();
    if (name == "help" || name == "config") continue;
    std::vector<std::string> values = opt->reduced_results();
    if (values.empty() && default_also && !opt->get_default_str().empty()) values = {opt->get_default_str()};
    if (values.empty()) continue;
    out << YAML::Key << name << YAML::Value;
    if (values.size() == 1) {
      out << values.front();
    } else {
      out << YAML::Flow << values;
    }
  }
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

std::vector<CLI::ConfigItem> YamlConfig::from_config(std::istream& input) const {
  std::vector<CLI::ConfigItem> result;
  try {
    YAML::Node root = YAML::Load(input);
    if (root.IsNull()) return result;
    if (!root.IsMap()) throw CLI::ConfigError("config file: expected a YAML mapping of flag names to values");
    std::vector<std::string> parents;
    Flatten(root, parents, result);
  } catch (const YAML::Exception& e) {
    throw CLI::ConfigError(std::string("config file: line ") + std::to_string(e.mark.line + 1) + ": " +
                           e.msg);
  }
  return result;
}

std::string EnvName(const std::string& prefix, const std::string& flag) {
  std::string out = prefix;
  for (char c : flag) {
    out += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return out;
}

std::string GroupedFormatter::make_help(const CLI::App* app, std::string name,
                                        CLI::AppFormatMode mode) const {
  if (mode == CLI::AppFormatMode::Sub) return make_expanded(app);
  // The binary's own groups in order of first use, then the shared ones in their fixed order.
  const std::vector<std::string> shared = {kGroupDiscovery, kGroupKubernetes, kGroupEndpoints, kGroupCommon};
  std::vector<std::string> order;
  for (const auto& g : app->get_groups()) {
    if (std::find(shared.begin(), shared.end(), g) == shared.end()) order.push_back(g);
  }
  order.insert(order.end(), shared.begin(), shared.end());
  std::stringstream groups;
  bool first = true;
  for (const auto& g : order) {
    std::vector<const CLI::Option*> opts = app->get_options(
        [&](const CLI::Option* opt) { return opt->get_group() == g && opt->nonpositional(); });
    if (g.empty() || opts.empty()) continue;
    if (!first) groups << "\n";
    groups << make_group(g, false, opts);
    first = false;
  }
  std::stringstream out;
  if (app->get_name().empty() && app->get_parent() != nullptr && app->get_group() != "Subcommands") {
    out << app->get_group() << ':';
  }
  out << make_description(app) << make_usage(app, std::move(name)) << make_positionals(app) << groups.str()
      << make_subcommands(app, mode) << '\n'
      << make_footer(app);
  return out.str();
}

void UseGroupedHelp(CLI::App& app) { app.formatter(std::make_shared<GroupedFormatter>()); }

FlagGroup::FlagGroup(CLI::App& app, const std::string& group)
    : app_(app), previous_(app.option_defaults()->get_group()) {
  app_.option_defaults()->group(group);
}

FlagGroup::~FlagGroup() { app_.option_defaults()->group(previous_); }

void AddCommonFlags(CLI::App& app, CommonFlags& flags, const std::string& env_prefix) {
  UseGroupedHelp(app);
  FlagGroup group(app, kGroupCommon);
  app.config_formatter(std::make_shared<YamlConfig>());
  app.set_config("--config", "", "YAML config file: keys are long flag names (flag > env > file)")
      ->group(kGroupCommon)
      ->envname(EnvName(env_prefix, "config"));
  app.add_option("--log-level", flags.log_level, "debug, info, warn or error")
      ->envname(EnvName(env_prefix, "log-level"))
      ->capture_default_str();
  app.add_option("--log-format", flags.log_format, "text (key=value) or json")
      ->envname(EnvName(env_prefix, "log-format"))
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
}

bool ApplyCommonFlags(const CommonFlags& flags, const std::string& component) {
  log::Level level;
  if (!log::ParseLevel(flags.log_level, &level)) {
    std::cerr << "invalid --log-level '" << flags.log_level << "' (debug, info, warn, error)\n";
    return false;
  }
  log::SetLevel(level);
  log::SetJson(flags.log_format == "json");
  log::SetComponent(component);
  return true;
}

}  // namespace hyperaccel::cli
