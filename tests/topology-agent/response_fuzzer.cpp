// libFuzzer target: everything the REST client does with bytes from the API server: Status error
// bodies, object bodies, watch streams split at arbitrary points, Lease times.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "hyperaccel/kube/client.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace hyperaccel;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  long code = size ? 400 + data[0] % 200 : 500;
  (void)kube::StatusFromResponse(code, in, "fuzz");
  auto obj = kube::ParseObject(in, "fuzz");
  if (obj.ok()) {
    (void)kube::ResourceVersionOf(*obj);
  }
  (void)kube::ParseMicroTime(in);
  // Watch stream, chunked at a data-dependent split.
  size_t split = size ? data[size - 1] % (size + 1) : 0;
  kube::WatchDecoder decoder(1 << 16);
  size_t events = 0;
  auto on_event = [&](kube::WatchEvent&& e) {
    (void)kube::ResourceVersionOf(e.object);
    return ++events < 1000;
  };
  if (decoder.Feed(in.substr(0, split), on_event).ok()) (void)decoder.Feed(in.substr(split), on_event);
  return 0;
}
