#include "server/common/sha256.h"

#include <string>

#include "gtest/gtest.h"

namespace moeserve {
namespace {

// Vectors from the NIST "SHA-256 examples" and FIPS 180-2 appendix B.
TEST(Sha256Test, EmptyString) {
  EXPECT_EQ(Sha256Hex(Sha256::Hash("")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(Sha256Test, Abc) {
  EXPECT_EQ(Sha256Hex(Sha256::Hash("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256Test, TwoBlockMessage448Bits) {
  EXPECT_EQ(Sha256Hex(Sha256::Hash("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Sha256Test, OneMillionAs) {
  EXPECT_EQ(Sha256Hex(Sha256::Hash(std::string(1000000, 'a'))),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256Test, StreamingMatchesOneShotAcrossChunkBoundaries) {
  std::string message;
  for (int i = 0; i < 300; ++i) message.push_back(static_cast<char>(i * 31 + 7));
  for (size_t len = 0; len <= message.size(); len += 13) {
    const std::string_view prefix(message.data(), len);
    const Sha256Digest expected = Sha256::Hash(prefix);
    for (size_t chunk : {1, 3, 63, 64, 65}) {
      Sha256 hasher;
      for (size_t pos = 0; pos < len; pos += chunk) {
        hasher.Update(prefix.substr(pos, chunk));
      }
      ASSERT_EQ(hasher.Finish(), expected) << "len " << len << " chunk " << chunk;
    }
  }
}

TEST(Sha256Test, PaddingEdgeLengths) {
  // 55 bytes fit the length in one block; 56 need a second block.
  EXPECT_EQ(Sha256Hex(Sha256::Hash(std::string(55, 'a'))),
            "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318");
  EXPECT_EQ(Sha256Hex(Sha256::Hash(std::string(56, 'a'))),
            "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a");
}

}  // namespace
}  // namespace moeserve
