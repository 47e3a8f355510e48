// A NodeServer in its own process, for tests that kill the plugin: serves the fake back ends
// (fake_backends.h) under --kubelet-dir until SIGTERM/SIGINT. --block makes every Prepare block
// (after touching --entered-file), so the test can kill the process mid-call.
#include <csignal>
#include <cstring>
#include <iostream>
#include <string>

#include "fake_backends.h"
#include "hyperaccel/common/shutdown.h"
#include "hyperaccel/dra_driver/node_server.h"

int main(int argc, char** argv) {
  namespace dra = hyperaccel::dra;
  dra::NodeServerOptions options;
  dra::testing::FakePreparer preparer;
  dra::testing::FakeHealth health;
  health.Set(dra::testing::Devices(4));
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--kubelet-dir" && i + 1 < argc) {
      options.kubelet_dir = argv[++i];
    } else if (a == "--block") {
      preparer.SetBlock(true);
    } else if (a == "--entered-file" && i + 1 < argc) {
      preparer.entered_file = argv[++i];
    } else {
      std::cerr << "usage: " << argv[0] << " --kubelet-dir DIR [--block] [--entered-file FILE]\n";
      return 2;
    }
  }
  hyperaccel::shutdown::InstallSignalHandlers();
  dra::NodeServer server(options, preparer, health);
  if (auto st = server.Start(); !st.ok()) {
    std::cerr << "start: " << st.message() << "\n";
    return 1;
  }
  while (!hyperaccel::shutdown::WaitFor(std::chrono::milliseconds(200))) {
  }
  preparer.SetBlock(false);
  server.Stop();
  return 0;
}
