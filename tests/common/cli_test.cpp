// The command-line rules every binary shares (common/cli.h): `--flag=` and an empty environment
// variable both mean "the empty value", and the environment beats the config file.
#include "hyperaccel/common/cli.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

namespace hyperaccel::cli {
namespace {

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    app_.add_option("--prestart-command", command_)->envname("T_PRESTART_COMMAND");
    app_.add_option("--metrics-address", address_)->envname("T_METRICS_ADDRESS");
    app_.add_option("--count", count_)->envname("T_COUNT");
    app_.add_flag("--verbose", verbose_)->envname("T_VERBOSE");
    app_.add_option("positional", positional_);
  }

  // Parses `args` with `env` as the whole environment.
  void ParseWith(std::vector<std::string> args) {
    auto normalized = NormalizeArgs(app_, std::move(args), [this](const char* name) -> const char* {
      auto it = env_.find(name);
      return it == env_.end() ? nullptr : it->second.c_str();
    });
    std::reverse(normalized.begin(), normalized.end());
    app_.parse(normalized);
  }

  CLI::App app_{"test"};
  std::map<std::string, std::string> env_;
  std::string command_ = "default-command";
  std::string address_ = ":9400";
  int count_ = 7;
  bool verbose_ = false;
  std::string positional_;
};

TEST_F(CliTest, EmptyValueAfterEqualsDoesNotSwallowTheNextArgument) {
  ParseWith({"--prestart-command=", "--metrics-address=127.0.0.1:1"});
  EXPECT_EQ(command_, "");
  EXPECT_EQ(address_, "127.0.0.1:1");
}

TEST_F(CliTest, EmptyValueAsLastArgumentIsEmpty) {
  ParseWith({"--metrics-address=1.2.3.4:5", "--prestart-command="});
  EXPECT_EQ(command_, "");
  EXPECT_EQ(address_, "1.2.3.4:5");
}

TEST_F(CliTest, EmptyValueBeforeAPositionalLeavesThePositionalAlone) {
  ParseWith({"--prestart-command=", "file.txt"});
  EXPECT_EQ(command_, "");
  EXPECT_EQ(positional_, "file.txt");
}

TEST_F(CliTest, EmptyValueForANumberDoesNotSwallowEither) {
  // CLI11 reads an empty number as 0; range checks on the option then apply as usual.
  ParseWith({"--count=", "--metrics-address=x:1"});
  EXPECT_EQ(count_, 0);
  EXPECT_EQ(address_, "x:1");
}

TEST_F(CliTest, EmptyEnvironmentVariableMeansEmpty) {
  env_["T_PRESTART_COMMAND"] = "";
  ParseWith({});
  EXPECT_EQ(command_, "");
}

TEST_F(CliTest, EnvironmentValuesStillApply) {
  env_["T_METRICS_ADDRESS"] = "0.0.0.0:1";
  env_["T_VERBOSE"] = "true";
  ParseWith({});
  EXPECT_EQ(address_, "0.0.0.0:1");
  EXPECT_TRUE(verbose_);
}

TEST_F(CliTest, FlagBeatsEnvironment) {
  env_["T_PRESTART_COMMAND"] = "";
  env_["T_METRICS_ADDRESS"] = "from-env";
  ParseWith({"--prestart-command=reset", "--metrics-address", "from-flag"});
  EXPECT_EQ(command_, "reset");
  EXPECT_EQ(address_, "from-flag");
}

TEST_F(CliTest, ArgumentsAfterSeparatorAreNotRewritten) {
  ParseWith({"--", "--prestart-command="});
  EXPECT_EQ(command_, "default-command");
  EXPECT_EQ(positional_, "--prestart-command=");
}

TEST(CliConfigTest, EnvironmentBeatsConfigFileEvenWhenEmpty) {
  const auto dir = std::filesystem::temp_directory_path() / ("cli_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto file = (dir / "config.yaml").string();
  std::ofstream(file) << "prestart-command: from-file\nmetrics-address: from-file\n";
  CLI::App app{"test"};
  CommonFlags common;
  AddCommonFlags(app, common, "T_");
  std::string command = "default";
  std::string address = "default";
  app.add_option("--prestart-command", command)->envname("T_PRESTART_COMMAND");
  app.add_option("--metrics-address", address)->envname("T_METRICS_ADDRESS");
  std::map<std::string, std::string> env = {{"T_PRESTART_COMMAND", ""}};
  auto args = NormalizeArgs(app, {"--config=" + file}, [&](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  });
  std::reverse(args.begin(), args.end());
  app.parse(args);
  EXPECT_EQ(command, "");
  EXPECT_EQ(address, "from-file");
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace hyperaccel::cli
