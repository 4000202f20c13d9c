// TLS and mutual TLS: the right credentials are accepted and the wrong ones refused. Certificates
// come from the openssl command line, made fresh per run; the test skips without it.

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/api/api_test_util.h"
#include "tests/test_util.h"

namespace moeserve::testing {
namespace {

namespace v1 = moeserve::v1;

std::string Read(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (std::system("command -v openssl >/dev/null 2>&1") != 0) return;
    dir_ = new std::string(MakeTempDir("api_tls").string());
    const std::string script =
        absl::StrCat("set -e; cd '", *dir_, "'; ", "K='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes'; ",
                     "openssl req -x509 $K -keyout ca.key -out ca.pem -days 1 -subj /CN=moeserve-test-ca; ",
                     "openssl req -x509 $K -keyout other_ca.key -out other_ca.pem -days 1 -subj /CN=other-ca; ",
                     "for n in server client; do ", "  openssl req $K -keyout $n.key -out $n.csr -subj /CN=$n; ",
                     "  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > $n.ext; ",
                     "  openssl x509 -req -in $n.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out $n.pem ",
                     "    -days 1 -extfile $n.ext; ", "done; ",
                     "openssl req -x509 $K -keyout rogue.key -out rogue.pem -days 1 -subj /CN=rogue\n");
    const std::string script_path = *dir_ + "/make_certs.sh";
    std::ofstream(script_path) << script;
    if (std::system(absl::StrCat("bash '", script_path, "' >/dev/null 2>&1").c_str()) != 0) {
      delete dir_;
      dir_ = nullptr;
    }
  }

  void SetUp() override {
    if (dir_ == nullptr) GTEST_SKIP() << "openssl is needed to make test certificates";
  }

  std::string File(const std::string& name) const { return *dir_ + "/" + name; }

  std::unique_ptr<TestServer> Start(bool mutual) {
    TestServerOptions options;
    options.model_dir = LlamaFixtureDir();
    options.server.tls_cert_file = File("server.pem");
    options.server.tls_key_file = File("server.key");
    if (mutual) options.server.tls_client_ca_file = File("ca.pem");
    auto server = TestServer::Start(options);
    EXPECT_TRUE(server.ok()) << server.status();
    return server.ok() ? std::move(*server) : nullptr;
  }

  static grpc::Status Info(std::shared_ptr<grpc::ChannelCredentials> creds, const TestServer& s) {
    auto stub = v1::Inference::NewStub(grpc::CreateChannel(s.address(), creds));
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::ModelInfo info;
    return stub->GetModelInfo(&context, v1::GetModelInfoRequest(), &info);
  }

  grpc::SslCredentialsOptions Ssl(const std::string& ca, const std::string& cert = "",
                                  const std::string& key = "") const {
    grpc::SslCredentialsOptions o;
    o.pem_root_certs = Read(File(ca));
    if (!cert.empty()) {
      o.pem_cert_chain = Read(File(cert));
      o.pem_private_key = Read(File(key));
    }
    return o;
  }

  static std::string* dir_;
};

std::string* TlsTest::dir_ = nullptr;

TEST_F(TlsTest, TlsAcceptsATrustingClientAndRefusesOthers) {
  auto server = Start(/*mutual=*/false);
  ASSERT_NE(server, nullptr);
  EXPECT_TRUE(Info(grpc::SslCredentials(Ssl("ca.pem")), *server).ok());
  EXPECT_FALSE(Info(grpc::SslCredentials(Ssl("other_ca.pem")), *server).ok());
  EXPECT_FALSE(Info(grpc::InsecureChannelCredentials(), *server).ok());
}

TEST_F(TlsTest, MutualTlsWantsAClientCertificateFromTheCa) {
  auto server = Start(/*mutual=*/true);
  ASSERT_NE(server, nullptr);
  EXPECT_TRUE(Info(grpc::SslCredentials(Ssl("ca.pem", "client.pem", "client.key")), *server).ok());
  EXPECT_FALSE(Info(grpc::SslCredentials(Ssl("ca.pem")), *server).ok());
  EXPECT_FALSE(Info(grpc::SslCredentials(Ssl("ca.pem", "rogue.pem", "rogue.key")), *server).ok());
}

// Issue 18: a key that does not belong to the certificate used to end in "cannot listen ... address
// in use".
TEST_F(TlsTest, AKeyThatDoesNotMatchTheCertificateIsNamed) {
  TestServerOptions options;
  options.model_dir = LlamaFixtureDir();
  options.server.tls_cert_file = File("server.pem");
  options.server.tls_key_file = File("rogue.key");
  auto server = TestServer::Start(options);
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(server.status().message()), ::testing::HasSubstr("does not match the certificate"));
}

TEST(TlsOptionsTest, IncompleteTlsOptionsAreRefused) {
  TestServerOptions options;
  options.model_dir = LlamaFixtureDir();
  options.server.tls_cert_file = "/nonexistent/cert.pem";
  auto server = TestServer::Start(options);
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
  options.server.tls_key_file = "/nonexistent/key.pem";
  server = TestServer::Start(options);
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace moeserve::testing
