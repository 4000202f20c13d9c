// Channel setup shared by the C++ clients (moeserve-cli, moeserve-bench): address, API key and
// TLS flags, and the channel built from them. Plain functions; no shared state.
#ifndef MOESERVE_CLIENTS_COMMON_CHANNEL_H_
#define MOESERVE_CLIENTS_COMMON_CHANNEL_H_

#include <memory>
#include <string>

#include "CLI/CLI.hpp"
#include "grpcpp/grpcpp.h"

namespace moeserve::clients {

struct ChannelOptions {
  std::string addr = "127.0.0.1:50051";
  std::string api_key;
  std::string api_key_file;
  bool tls = false;
  std::string tls_ca;
  std::string tls_cert;
  std::string tls_key;
  std::string tls_server_name;
};

// Adds --api-key, --api-key-file, --tls, --tls-ca, --tls-cert, --tls-key, --tls-server-name
// (not --addr: each tool words its own).
void AddChannelFlags(CLI::App* app, ChannelOptions* options);

// The API key to send as `authorization: Bearer KEY` ("" for none): --api-key, or the first line of
// --api-key-file. False with *error set when the file cannot be read.
bool ResolveApiKey(const ChannelOptions& options, std::string* key, std::string* error);

// A channel to options.addr with the TLS settings. `index` >= 0 gives the channel its own
// subchannel pool, so that channels with different indexes use different TCP connections.
// Null with *error set when a certificate file cannot be read or the flags contradict.
std::shared_ptr<grpc::Channel> MakeChannel(const ChannelOptions& options, std::string* error, int index = -1);

// "OK", "CANCELLED", ... for a status code.
const char* CodeName(grpc::StatusCode code);

// Reads a whole file; false when it cannot be opened.
bool ReadFile(const std::string& path, std::string* out);

}  // namespace moeserve::clients

#endif  // MOESERVE_CLIENTS_COMMON_CHANNEL_H_
