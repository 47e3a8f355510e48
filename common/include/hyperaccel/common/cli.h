// Command-line conventions shared by every binary (CLI11):
//  - every option has a long flag, an environment variable and a key in the YAML config file;
//    precedence is flag > environment > config file > default;
//  - the config file (--config FILE) is a YAML mapping whose keys are the long flag names without
//    dashes ("kubelet-dir: /var/lib/kubelet/device-plugins"); nested mappings give dotted names and
//    sequences give multi-value options;
//  - --log-level and --log-format are always there;
//  - --help lists options in groups, in the same order in every binary: help, the binary's own
//    groups (in the order they are first used), then the shared groups below in this order.
//  - an empty value is a value: `--flag=` and an environment variable set to "" both set the
//    option to the empty string (the way to turn off an option whose default is not empty).
//    Parse() implements these rules on top of CLI11; call it instead of CLI11_PARSE.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

namespace hyperaccel::cli {

// CLI11 config reader for YAML files (yaml-cpp).
class YamlConfig : public CLI::Config {
 public:
  std::string to_config(const CLI::App* app, bool default_also, bool write_description,
                        std::string prefix) const override;
  std::vector<CLI::ConfigItem> from_config(std::istream& input) const override;
};

// Shared option groups, listed after the binary's own groups, in this order.
inline constexpr const char* kGroupDiscovery = "Discovery";               // finding cards and links (xrt/)
inline constexpr const char* kGroupKubernetes = "Kubernetes API";         // kubeconfig, API timeouts
inline constexpr const char* kGroupEndpoints = "Metrics and health";      // /metrics, /healthz, /readyz
inline constexpr const char* kGroupCommon = "Configuration and logging";  // --config, --log-*

// CLI11 help formatter that prints option groups in the order above.
class GroupedFormatter : public CLI::Formatter {
 public:
  std::string make_help(const CLI::App* app, std::string name, CLI::AppFormatMode mode) const override;
};

// Installs GroupedFormatter on `app` (subcommands created afterwards inherit it).
void UseGroupedHelp(CLI::App& app);

// While it lives, options added to `app` go to `group`.
class FlagGroup {
 public:
  FlagGroup(CLI::App& app, const std::string& group);
  ~FlagGroup();
  FlagGroup(const FlagGroup&) = delete;
  FlagGroup& operator=(const FlagGroup&) = delete;

 private:
  CLI::App& app_;
  std::string previous_;
};

struct CommonFlags {
  std::string log_level = "info";
  std::string log_format = "text";  // text | json
};

// Installs the YAML config reader, the grouped help, and the --config, --log-level and
// --log-format options (group kGroupCommon).
// `env_prefix` is prepended to upper-cased flag names for environment variables (for example
// "HYPERACCEL_" gives HYPERACCEL_LOG_LEVEL).
void AddCommonFlags(CLI::App& app, CommonFlags& flags, const std::string& env_prefix);

// Applies log level and format; returns false (after printing why) when a value is invalid.
bool ApplyCommonFlags(const CommonFlags& flags, const std::string& component);

// Rewrites a command line (without the program name) so CLI11 applies the rules above:
//  - `--name=` for an option that takes a value becomes `--name ""` (CLI11 would otherwise take
//    the next argument as the value);
//  - every option of `app` with an environment variable that `getenv` finds set (even to "") and
//    that the command line does not give is prepended as `--name=value` (`--name ""` when empty),
//    so the environment beats the config file and an empty variable means an empty value.
// Arguments after a `--` separator are left alone.
std::vector<std::string> NormalizeArgs(const CLI::App& app, std::vector<std::string> args,
                                       const std::function<const char*(const char*)>& getenv);

// Parses argv with NormalizeArgs (environment from the process). Returns -1 when the program
// should go on, otherwise the exit code after CLI11 printed help or the error (as CLI11_PARSE).
int Parse(CLI::App& app, int argc, const char* const* argv);

// "kubelet-dir" -> "HYPERACCEL_KUBELET_DIR".
std::string EnvName(const std::string& prefix, const std::string& flag);

}  // namespace hyperaccel::cli
