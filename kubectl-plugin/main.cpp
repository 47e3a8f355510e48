// kubectl-hyperaccel: the `kubectl hyperaccel` plugin (topo, plan, cards).
#include <iostream>
#include <string>
#include <vector>

#include "hyperaccel/kubectl_plugin/cli.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return hyperaccel::kubectl::Run(args, std::cout, std::cerr);
}
