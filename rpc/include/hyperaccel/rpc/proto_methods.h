// Typed handlers for hyperaccel::rpc::Server over Protobuf messages (full or lite: anything with
// ParseFromArray and SerializeToString). The server deals in bytes; these parse the request,
// answer a message that cannot be parsed with INVALID_ARGUMENT, and serialize the response.
// Header-only: the rpc library itself does not link Protobuf.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "hyperaccel/rpc/h2_server.h"

namespace hyperaccel::rpc {

inline GrpcStatus UnparsableRequest() {
  return {GrpcCode::kInvalidArgument, "cannot parse the request message"};
}

template <class Message>
bool ParseRequest(std::string_view in, Message* msg) {
  return msg->ParseFromArray(in.data(), static_cast<int>(in.size()));
}

// A unary method answered on the serving thread: `answer(const Request&, Response*)` returns the
// call's GrpcStatus; the response is sent only when it is OK.
template <class Request, class Response, class Answer>
Server::Unary ProtoUnary(Answer answer) {
  return [answer = std::move(answer)](std::string_view in, std::string* out) -> GrpcStatus {
    Request req;
    if (!ParseRequest(in, &req)) return UnparsableRequest();
    Response resp;
    GrpcStatus st = answer(req, &resp);
    if (st.ok() && !resp.SerializeToString(out)) return {GrpcCode::kInternal, "cannot serialize the answer"};
    return st;
  };
}

// A unary method answered later: `start(const Request&, std::shared_ptr<UnaryResponder>)` runs on
// the serving thread with the parsed request and must not block.
template <class Request, class Start>
Server::DeferredUnary ProtoDeferred(Start start) {
  return [start = std::move(start)](std::string_view in, std::shared_ptr<UnaryResponder> responder) {
    Request req;
    if (!ParseRequest(in, &req)) {
      responder->Finish(UnparsableRequest(), {});
      return;
    }
    start(req, std::move(responder));
  };
}

// A server-streaming method: `open(const Request&, std::shared_ptr<ServerStream>)` runs on the
// serving thread with the parsed request.
template <class Request, class Open>
Server::Streaming ProtoStreaming(Open open) {
  return [open = std::move(open)](std::string_view in, std::shared_ptr<ServerStream> stream) {
    Request req;
    if (!ParseRequest(in, &req)) {
      stream->Finish(UnparsableRequest());
      return;
    }
    open(req, std::move(stream));
  };
}

}  // namespace hyperaccel::rpc
