// Every signal a supervisor or a terminal sends to stop a daemon asks for the same graceful
// shutdown (common/shutdown.h) instead of killing the process without cleanup.
#include "hyperaccel/common/shutdown.h"

#include <gtest/gtest.h>

#include <csignal>

namespace hyperaccel::shutdown {
namespace {

class ShutdownSignalTest : public ::testing::TestWithParam<int> {};

TEST_P(ShutdownSignalTest, SignalRequestsGracefulShutdown) {
  InstallSignalHandlers();
  ResetForTest();
  ASSERT_FALSE(Requested());
  ASSERT_EQ(std::raise(GetParam()), 0);  // before the fix SIGHUP and SIGQUIT ended this process
  EXPECT_TRUE(WaitFor(std::chrono::milliseconds(1000)));
  EXPECT_TRUE(Requested());
  ResetForTest();
}

INSTANTIATE_TEST_SUITE_P(Signals, ShutdownSignalTest, ::testing::Values(SIGTERM, SIGINT, SIGHUP, SIGQUIT),
                         [](const ::testing::TestParamInfo<int>& param) {
                           switch (param.param) {
                             case SIGTERM: return std::string("SIGTERM");
                             case SIGINT: return std::string("SIGINT");
                             case SIGHUP: return std::string("SIGHUP");
                             default: return std::string("SIGQUIT");
                           }
                         });

}  // namespace
}  // namespace hyperaccel::shutdown
