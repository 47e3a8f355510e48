#include "process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace hyperaccel::testing {

std::string BinDir() {
  const char* dir = std::getenv("HYPERACCEL_BIN_DIR");  // NOLINT(concurrency-mt-unsafe)
  return dir != nullptr ? dir : "build/bin";
}

namespace {
std::string ReadAll(int fd) {
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}
}  // namespace

ProcessResult RunBinary(const std::string& binary, const std::vector<std::string>& args) {
  std::string path = binary.find('/') == std::string::npos ? BinDir() + "/" + binary : binary;
  char out_tmpl[] = "/tmp/ha-out-XXXXXX";
  char err_tmpl[] = "/tmp/ha-err-XXXXXX";
  int out_fd = mkstemp(out_tmpl);
  int err_fd = mkstemp(err_tmpl);
  if (out_fd < 0 || err_fd < 0) throw std::runtime_error("mkstemp failed");
  pid_t pid = fork();
  if (pid == 0) {
    dup2(out_fd, 1);
    dup2(err_fd, 2);
    std::vector<char*> argv;
    argv.push_back(path.data());
    std::vector<std::string> copy = args;
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(path.c_str(), argv.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ProcessResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  lseek(out_fd, 0, SEEK_SET);
  lseek(err_fd, 0, SEEK_SET);
  r.out = ReadAll(out_fd);
  r.err = ReadAll(err_fd);
  close(out_fd);
  close(err_fd);
  unlink(out_tmpl);
  unlink(err_tmpl);
  return r;
}

Child StartBinary(const std::string& binary, const std::vector<std::string>& args,
                  const std::string& log_path) {
  std::string path = binary.find('/') == std::string::npos ? BinDir() + "/" + binary : binary;
  Child child;
  child.log_path = log_path;
  child.pid = SpawnDaemon(path, args, log_path);
  if (child.pid < 0) throw std::runtime_error("fork failed");
  return child;
}

int WaitForExit(Child& child, std::chrono::milliseconds timeout) {
  if (child.pid <= 0) return -1;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (true) {
    const pid_t r = waitpid(child.pid, &status, WNOHANG);
    if (r == child.pid) break;
    if (std::chrono::steady_clock::now() >= deadline) {
      kill(child.pid, SIGKILL);
      waitpid(child.pid, &status, 0);
      child.pid = -1;
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  child.pid = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string ReadLog(const Child& child) {
  std::ifstream in(child.log_path);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

pid_t SpawnDaemon(const std::string& path, const std::vector<std::string>& args,
                  const std::string& log_file) {
  // Everything the child needs is prepared before fork (the caller may have threads).
  std::string program = path;
  std::vector<std::string> copy = args;
  std::vector<char*> argv{program.data()};
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    int fd = open(log_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    close_range(3, ~0U, 0);
    setpgid(0, 0);
    execv(program.c_str(), argv.data());
    _exit(127);
  }
  return pid;
}

int FreeLoopbackPort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

}  // namespace hyperaccel::testing
