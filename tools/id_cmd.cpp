// p2p id create | show | export | import
#include <iostream>

#include "core/identity.h"
#include "core/keys.h"
#include "storage/files.h"
#include "tools/cli.h"

namespace p2p::cli {

namespace {

nlohmann::json describe(const Key32& primary_key, bool sealed, const std::string& home) {
  auto signing = identity::signing_key_pair(primary_key);
  auto noise = identity::noise_key_pair(primary_key);
  return {{"publicKey", to_hex(signing.public_key)},
          {"id", keys::to_z32(signing.public_key)},
          {"noisePublicKey", to_hex(noise.public_key)},
          {"sealed", sealed},
          {"home", home}};
}

int show(Context& ctx, Home& home, const Key32& key) {
  auto sealed = identity::stored_is_sealed(home.path());
  nlohmann::json d = describe(key, sealed.ok() && *sealed, home.path());
  if (ctx.json) {
    ctx.emit(d);
  } else {
    std::cout << d["id"].get<std::string>() << "\n";
  }
  return kOk;
}

int create(Context& ctx, bool force) {
  auto home = ctx.home();
  if (!home.ok()) return ctx.fail(home.status());
  auto pass = ctx.passphrase();
  if (!pass.ok()) return ctx.fail(pass.status());
  Key32 key = crypto::random_key();
  if (force) {
    if (Status s = identity::replace((*home)->path(), key, *pass); !s.ok()) return ctx.fail(s);
  } else {
    auto created = identity::create((*home)->path(), key, *pass);
    if (!created.ok()) return ctx.fail(created.status());
    if (!*created)
      return ctx.fail(error(ErrorCode::permission,
                            "an identity already exists in " + (*home)->path() +
                                " (see 'p2p id show'); use --force to replace it, which loses write access "
                                "to every core made with the old one"));
  }
  ctx.info(std::string("created a new identity") + (*pass ? " sealed with your passphrase" : "") +
           "; back it up with 'p2p id export'");
  return show(ctx, **home, key);
}

int export_identity(Context& ctx, bool plain) {
  auto home = ctx.home();
  if (!home.ok()) return ctx.fail(home.status());
  auto pass = ctx.passphrase();
  if (!pass.ok()) return ctx.fail(pass.status());
  auto key = (*home)->primary_key();
  if (!key.ok()) return ctx.fail(key.status());
  ctx.note_identity_created();
  bool sealed = pass->has_value() && !plain;
  std::string text = sealed ? identity::export_sealed(*key, **pass) : identity::export_plain(*key);
  if (ctx.json)
    ctx.emit({{"primaryKey", text}, {"sealed", sealed}});
  else
    std::cout << text << "\n";
  return kOk;
}

int import_identity(Context& ctx, const std::string& file, bool force) {
  Result<Bytes> text = (file.empty() || file == "-") ? read_stdin(4096) : storage::read_file(file, 4096);
  if (!text.ok()) return ctx.fail(text.status());
  auto pass = ctx.passphrase();
  if (!pass.ok()) return ctx.fail(pass.status());
  auto key = identity::parse(as_chars(*text), *pass);
  if (!key.ok()) return ctx.fail(key.status());
  auto home = ctx.home();
  if (!home.ok()) return ctx.fail(home.status());
  if (force) {
    if (Status s = identity::replace((*home)->path(), *key, *pass); !s.ok()) return ctx.fail(s);
  } else {
    auto created = identity::create((*home)->path(), *key, *pass);
    if (!created.ok()) return ctx.fail(created.status());
    if (!*created)
      return ctx.fail(error(ErrorCode::permission, "an identity already exists in " + (*home)->path() +
                                                       "; use --force to replace it"));
  }
  ctx.info("imported the identity into " + (*home)->path());
  return show(ctx, **home, *key);
}

}  // namespace

void add_id_commands(CLI::App& app, Context& ctx) {
  auto* id = app.add_subcommand("id", "The local identity: one root secret from which every key derives");
  id->require_subcommand(1);

  auto* create_cmd = id->add_subcommand("create", "Create a new identity (sealed when --passphrase-file is given)");
  auto force_create = std::make_shared<bool>(false);
  create_cmd->add_flag("--force", *force_create, "Replace an existing identity");
  create_cmd->callback([&ctx, force_create] { ctx.run = [&ctx, force_create] { return create(ctx, *force_create); }; });

  auto* show_cmd = id->add_subcommand("show", "Print the identity's public key (z-base-32)");
  show_cmd->callback([&ctx] {
    ctx.run = [&ctx] {
      auto home = ctx.home();
      if (!home.ok()) return ctx.fail(home.status());
      auto key = (*home)->primary_key();
      if (!key.ok()) return ctx.fail(key.status());
      ctx.note_identity_created();
      return show(ctx, **home, *key);
    };
  });

  auto* export_cmd = id->add_subcommand("export", "Print the primary key: 64 hex characters, or sealed with --passphrase-file");
  auto plain = std::make_shared<bool>(false);
  export_cmd->add_flag("--plain", *plain, "Print 64 hex characters even when --passphrase-file is given (it then only unlocks)");
  export_cmd->callback([&ctx, plain] { ctx.run = [&ctx, plain] { return export_identity(ctx, *plain); }; });

  auto* import_cmd = id->add_subcommand("import", "Store an identity printed by 'p2p id export' (from FILE or stdin)");
  auto file = std::make_shared<std::string>();
  auto force_import = std::make_shared<bool>(false);
  import_cmd->add_option("FILE", *file, "File holding the exported identity ('-' or absent: stdin)");
  import_cmd->add_flag("--force", *force_import, "Replace an existing identity");
  import_cmd->callback([&ctx, file, force_import] {
    ctx.run = [&ctx, file, force_import] { return import_identity(ctx, *file, *force_import); };
  });
}

}  // namespace p2p::cli
