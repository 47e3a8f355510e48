// files::WriteAtomic: the new content replaces the old whole, no temporary is left behind, and
// failures are errors that name the file.
#include "hyperaccel/common/files.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace hyperaccel::files {
namespace {

namespace fs = std::filesystem;

std::string Read(const fs::path& p) {
  std::ifstream in(p);
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

class Files : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("hyperaccel-files-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(Files, ReplacesWholeAndCreatesTheDirectory) {
  const fs::path p = dir_ / "a" / "b.json";
  for (Sync sync : {Sync::kNone, Sync::kFile, Sync::kFileAndDirectory}) {
    ASSERT_TRUE(WriteAtomic(p.string(), "first, longer content", sync).ok());
    ASSERT_TRUE(WriteAtomic(p.string(), "second", sync).ok());
    EXPECT_EQ(Read(p), "second");
    EXPECT_FALSE(fs::exists(p.string() + ".tmp"));
  }
  EXPECT_TRUE(SyncDirectory((dir_ / "a").string()).ok());
}

TEST_F(Files, FailuresNameTheFile) {
  fs::create_directories(dir_);
  const fs::path not_dir = dir_ / "plain";
  std::ofstream(not_dir) << "x";
  Status st = WriteAtomic((not_dir / "child.json").string(), "y", Sync::kFile);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("plain"), std::string::npos) << st.message();
  st = SyncDirectory((dir_ / "missing").string());
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("missing"), std::string::npos) << st.message();
}

}  // namespace
}  // namespace hyperaccel::files
