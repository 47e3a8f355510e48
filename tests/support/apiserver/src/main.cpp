// hyperaccel-apiserver-emulator: serves the API-server emulator on 127.0.0.1 until SIGTERM/SIGINT
// (for the end-to-end demo). Prints "listening <url>" once ready.
#include <CLI/CLI.hpp>
#include <iostream>
#include <set>
#include <string>
#include <vector>

#include "hyperaccel/common/shutdown.h"
#include "hyperaccel/testing/apiserver_emulator.h"

int main(int argc, char** argv) {
  CLI::App app{"kube-apiserver emulator (nodes, HyperNodes, Leases) on 127.0.0.1, for demos and tests"};
  int port = 0;
  std::vector<std::string> tokens;
  std::vector<std::string> nodes;
  app.add_option("--port", port, "TCP port on 127.0.0.1 (0 = any free port)");
  app.add_option("--token", tokens, "accepted bearer token with full access (repeatable; none = no auth)");
  app.add_option("--node", nodes, "create a Node object with this name (repeatable)");
  CLI11_PARSE(app, argc, argv);
  hyperaccel::shutdown::InstallSignalHandlers();
  hyperaccel::testing::ApiServerEmulator emulator;
  for (const auto& t : tokens) emulator.AddToken(t);
  for (const auto& n : nodes) emulator.PutNode(n);
  if (auto s = emulator.Start(port); !s.ok()) {
    std::cerr << s.ToString() << "\n";
    return 1;
  }
  std::cout << "listening " << emulator.url() << std::endl;
  while (!hyperaccel::shutdown::WaitFor(std::chrono::seconds(1))) {
  }
  emulator.Stop();
  return 0;
}
