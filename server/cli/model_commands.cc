// `moeserve convert` and `moeserve make-model`: write Hugging Face model directories.

#include <memory>

#include "absl/strings/str_cat.h"
#include "server/cli/commands.h"
#include "server/common/mapped_file.h"
#include "server/common/status_macros.h"
#include "server/model/llama2c_checkpoint.h"
#include "server/model/random_model.h"
#include "server/tokenizer/llama2c_vocab.h"

namespace moeserve {

void AddConvertCommand(CLI::App& app, absl::Status* status) {
  struct Options {
    std::string llama2c, tokenizer, out;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "convert", "Convert a llama2.c checkpoint (+ its tokenizer.bin) into a Hugging Face Llama directory");
  cmd->add_option("--llama2c", o->llama2c, "llama2.c model file (e.g. stories260K.bin)")->required();
  cmd->add_option("--tokenizer", o->tokenizer, "llama2.c tokenizer file (e.g. tok512.bin)")->required();
  cmd->add_option("--out", o->out, "output directory")->required();
  cmd->callback([o, status] {
    *status = [&]() -> absl::Status {
      RETURN_IF_ERROR(ConvertLlama2cCheckpoint(o->llama2c, o->out));
      ASSIGN_OR_RETURN(ConvertedTokenizer tok, ConvertLlama2cVocab(o->tokenizer));
      return WriteConvertedTokenizer(tok, o->out);
    }();
  });
}

void AddMakeModelCommand(CLI::App& app, absl::Status* status) {
  struct Options {
    std::string config, out, dtype = "bf16";
    uint64_t seed = 0;
    float init_std = 0.02f;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("make-model", "Write a model with random weights for a config.json");
  cmd->add_option("--config", o->config, "config.json of any supported architecture")->required();
  cmd->add_option("--out", o->out, "output directory")->required();
  cmd->add_option("--seed", o->seed, "random seed")->capture_default_str();
  cmd->add_option("--dtype", o->dtype, "weight dtype: f32, bf16 or f16")->capture_default_str();
  cmd->add_option("--init-std", o->init_std, "standard deviation of linear weights")->capture_default_str();
  cmd->callback([o, status] {
    *status = [&]() -> absl::Status {
      RandomModelOptions options{.seed = o->seed, .init_std = o->init_std};
      if (o->dtype == "f32")
        options.dtype = DType::kF32;
      else if (o->dtype == "bf16")
        options.dtype = DType::kBF16;
      else if (o->dtype == "f16")
        options.dtype = DType::kF16;
      else
        return absl::InvalidArgumentError(absl::StrCat("--dtype must be f32, bf16 or f16, got ", o->dtype));
      ASSIGN_OR_RETURN(std::string config, ReadFileToString(o->config));
      return WriteRandomModel(config, o->out, options);
    }();
  });
}

}  // namespace moeserve
