// p2p chat: rooms of many writers (net/chat_room). Interactive in a
// terminal; `send` and `log` for scripts; `create` for private rooms.
#include <ctime>
#include <deque>
#include <iostream>

#include "core/keys.h"
#include "net/chat_room.h"
#include "tools/chat_terminal.h"
#include "tools/dht_client.h"

namespace p2p::cli {
namespace {

constexpr size_t kShownHistory = 50;  // entries shown when joining; /history N for more

struct ChatArgs {
  std::string room, message, since, title;
  bool follow = false, sync = false;
  double timeout_s = 10;
  size_t history = kShownHistory;
};

Result<room::RoomRef> resolve_room(const std::string& text) {
  if (text.empty()) return invalid_argument("a room name or link is needed");
  if (auto key = keys::parse(text)) return room::RoomRef{*key, false, ""};
  return room::RoomRef{room::open_room_key(text), true, text};
}

std::string short_id(const Key32& key) { return keys::to_z32(key).substr(0, 8); }

// Text from peers goes to a terminal: control characters (escape sequences
// included) become spaces so nobody can repaint another's screen.
std::string printable(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); i++) {
    auto c = static_cast<unsigned char>(s[i]);
    bool c1 = c == 0xC2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) >= 0x80 &&
              static_cast<unsigned char>(s[i + 1]) < 0xA0;
    if (c1) {
      out += ' ';
      i++;
    } else {
      out += c < 0x20 || c == 0x7F ? ' ' : static_cast<char>(c);
    }
  }
  return out;
}

bool valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t j = 1; j < n; j++)
      if ((static_cast<unsigned char>(s[i + j]) & 0xC0) != 0x80) return false;
    i += n;
  }
  return true;
}

std::string local_time(uint64_t ms, bool with_date) {
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, with_date ? "%Y-%m-%d %H:%M:%S" : "%H:%M", &tm);
  return buf;
}

std::string iso_time(uint64_t ms) {
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[48];
  std::snprintf(out, sizeof out, "%s.%03uZ", buf, static_cast<unsigned>(ms % 1000));
  return out;
}

// --since: seconds since 1970, an ISO 8601 UTC time, or an age like 90s, 10m, 2h, 3d.
Result<uint64_t> parse_since(const std::string& text, uint64_t now_ms) {
  auto bad = [&] {
    return invalid_argument("--since " + text +
                            ": give an age (90s, 10m, 2h, 3d), seconds since 1970, or a UTC time like 2026-12-02T10:00:00Z");
  };
  if (text.empty()) return bad();
  char* end = nullptr;
  unsigned long long n = std::strtoull(text.c_str(), &end, 10);
  if (end != text.c_str() && *end && !end[1]) {
    uint64_t unit = *end == 's' ? 1000 : *end == 'm' ? 60'000 : *end == 'h' ? 3'600'000 : *end == 'd' ? 86'400'000 : 0;
    if (unit == 0 || n > now_ms / unit) return bad();
    return now_ms - n * unit;
  }
  if (end != text.c_str() && !*end) return static_cast<uint64_t>(n) * 1000;
  std::tm tm{};
  const char* rest = strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (!rest) rest = strptime(text.c_str(), "%Y-%m-%d", &tm);
  if (!rest || (*rest && std::string_view(rest) != "Z")) return bad();
  return static_cast<uint64_t>(timegm(&tm)) * 1000;
}

std::string name_of(const net::ChatRoom& room, const Key32& identity) {
  std::string nick = room.nick_of(identity);
  return nick.empty() ? short_id(identity) : printable(nick);
}

std::string describe(const net::ChatRoom& room, const room::Entry& e, bool with_date) {
  std::string who = e.nick.empty() ? short_id(e.author) : printable(e.nick);
  std::string when = local_time(e.message.time_ms, with_date);
  switch (e.message.kind) {
    case room::Kind::text:
      return when + " " + who + ": " + printable(e.message.text);
    case room::Kind::nick:
      return when + " -- " + short_id(e.author) + " is now known as " + printable(e.message.text);
    case room::Kind::hello:
      return when + " -- " + who + " joined the room";
    case room::Kind::add:
      return when + " -- " + who + " added " + name_of(room, e.message.member) + (e.message.admin ? " as an admin" : "");
    case room::Kind::remove:
      return when + " -- " + who + " removed " + name_of(room, e.message.member);
  }
  return when;
}

nlohmann::json entry_json(const room::Entry& e) {
  static const char* kinds[] = {"join", "message", "nick", "add", "remove"};
  nlohmann::json j = {{"position", e.position},
                      {"type", kinds[static_cast<int>(e.message.kind)]},
                      {"author", to_hex(e.author)},
                      {"nick", e.nick},
                      {"time", iso_time(e.message.time_ms)},
                      {"timeMs", e.message.time_ms},
                      {"writer", to_hex(e.writer)},
                      {"seq", e.seq}};
  if (e.message.kind == room::Kind::text || e.message.kind == room::Kind::nick) j["text"] = e.message.text;
  if (e.message.kind == room::Kind::add || e.message.kind == room::Kind::remove) {
    j["member"] = to_hex(e.message.member);
    if (e.message.kind == room::Kind::add) j["admin"] = e.message.admin;
  }
  if (e.late) j["late"] = true;
  return j;
}

// What every chat command opens: the room, our identity, optionally the DHT.
struct Session {
  crypto::KeyPair identity;
  std::unique_ptr<dht::Runtime> dht;
  std::unique_ptr<net::ChatRoom> room;
};

Result<Session> open_room(Context& ctx, const std::string& room_text) {
  auto ref = resolve_room(room_text);
  if (!ref.ok()) return ref.status();
  auto home = ctx.home();
  if (!home.ok()) return home.status();
  auto store = (*home)->writer();
  if (!store.ok()) return store.status();
  auto identity = identity_key_pair(ctx);
  if (!identity.ok()) return identity.status();
  Session s;
  s.identity = *identity;
  auto room = net::ChatRoom::open(**store, *ref, *identity);
  if (!room.ok()) return room.status();
  s.room = std::move(*room);
  return s;
}

// Joins the room's peers once the DHT is joined (in the background: the
// room is usable offline meanwhile; its first lookup needs a routing table).
// `warn` hears what the user must know (the interactive session prints it
// above the input line).
Status go_online(Context& ctx, Session& s, bool long_running, net::ChatRoom::Events events,
                 std::function<void(const std::string&)> warn = {}, bool server = true) {
  auto rt = open_dht(ctx, long_running);
  if (!rt.ok()) return rt.status();
  s.dht = std::move(*rt);
  s.room->set_events(std::move(events));
  if (!warn) warn = [&ctx](const std::string& m) { ctx.info(m); };
  s.dht->node().bootstrap([warn, server, room = s.room.get(), dht = s.dht.get()] {
    if (dht->node().table().size() == 0)
      warn("no DHT node answered: check --bootstrap (or P2P_BOOTSTRAP); looking for peers anyway");
    if (Status st = room->go_online(*dht, server); !st.ok()) warn("cannot join the room's peers: " + st.message());
  });
  return {};
}

Result<std::string> message_text(const ChatArgs& a) {
  std::string text = a.message;
  if (text.empty() || text == "-") {
    auto in = read_stdin(4 * room::kMaxTextBytes);  // more is refused below, by the message's limit
    if (!in.ok()) return invalid_argument("a message is at most " + std::to_string(room::kMaxTextBytes) + " bytes");
    text.assign(in->begin(), in->end());
    if (!text.empty() && text.back() == '\n') text.pop_back();
    if (!text.empty() && text.back() == '\r') text.pop_back();
  }
  if (text.empty()) return invalid_argument("the message is empty");
  if (text.size() > room::kMaxTextBytes)
    return invalid_argument("a message is at most " + std::to_string(room::kMaxTextBytes) + " bytes");
  if (!valid_utf8(text)) return invalid_argument("the message is not valid UTF-8");
  return text;
}

// Runs until a peer was met and nothing new came for `quiet_ms`, at most
// `budget_ms`; true when a peer was met.
bool catch_up(Session& s, uint64_t budget_ms, uint64_t quiet_ms) {
  dht::Clock& clock = s.dht->node().clock();
  uint64_t seen = s.room->entries(), last_change = 0;
  s.dht->run_until(
      [&] {
        uint64_t now = clock.now_ms();
        if (s.room->peers() == 0) return false;
        if (last_change == 0 || s.room->entries() != seen) {  // the first peer, or news
          seen = s.room->entries();
          last_change = now;
        }
        return now - last_change >= quiet_ms;
      },
      budget_ms);
  return s.room->peers() > 0;
}

uint64_t to_ms(double seconds) { return seconds <= 0 ? 0 : static_cast<uint64_t>(seconds * 1000); }

int send(Context& ctx, const ChatArgs& a) {
  auto text = message_text(a);
  if (!text.ok()) return ctx.fail(text.status());
  auto s = open_room(ctx, a.room);
  if (!s.ok()) return ctx.fail(s.status());
  if (Status st = s->room->update(); !st.ok()) return ctx.fail(st);
  // The room first (briefly), so the message follows what its peers hold
  // rather than sorting before it; then the message, and until a peer holds it.
  Status online = go_online(ctx, *s, false, {}, {}, false);
  dht::Clock* clock = online.ok() ? &s->dht->node().clock() : nullptr;
  uint64_t start = clock ? clock->now_ms() : 0;
  if (clock) catch_up(*s, to_ms(std::min(a.timeout_s, 5.0)), 300);
  room::Message m;
  m.kind = room::Kind::text;
  m.text = *text;
  auto length = s->room->post(std::move(m));
  if (!length.ok()) return ctx.fail(length.status());
  Status reached = online;
  if (clock) {
    uint64_t spent = clock->now_ms() - start, budget = to_ms(a.timeout_s);
    double left_s = spent >= budget ? 0.001 : static_cast<double>(budget - spent) / 1000.0;  // (0 would mean no limit)
    reached = wait_for(*s->dht, left_s, [&] { return s->room->delivered(); }, "reaching a peer");
  }
  if (ctx.json)
    ctx.emit({{"room", to_hex(s->room->ref().key)}, {"seq", *length - 1}, {"delivered", reached.ok()}});
  if (!reached.ok()) {
    std::cerr << "p2p: stored locally, no peer reached within " << a.timeout_s
              << " s; it goes out the next time this home is in the room\n";
    return kFailure;
  }
  ctx.info("delivered to a peer");
  return kOk;
}

int log(Context& ctx, const ChatArgs& a) {
  auto s = open_room(ctx, a.room);
  if (!s.ok()) return ctx.fail(s.status());
  uint64_t since = 0;
  if (!a.since.empty()) {
    auto now = static_cast<uint64_t>(std::time(nullptr)) * 1000;
    auto t = parse_since(a.since, now);
    if (!t.ok()) return ctx.fail(t.status());
    since = *t;
  }
  auto print = [&](const room::Entry& e) {
    if (e.message.time_ms < since) return;
    if (ctx.json) ctx.emit(entry_json(e));
    else std::cout << describe(*s->room, e, true) << "\n";
  };
  if (a.sync || a.follow) {
    if (Status st = go_online(ctx, *s, a.follow, {}, {}, a.follow); !st.ok()) return ctx.fail(st);
    if (a.sync && !catch_up(*s, to_ms(a.timeout_s), 1000))
      ctx.info("no peer reached within " + std::to_string(static_cast<int>(a.timeout_s)) +
               " s: the history is what this home holds");
  }
  if (Status st = s->room->update(); !st.ok()) return ctx.fail(st);
  if (Status st = s->room->history(print); !st.ok()) return ctx.fail(st);
  std::cout.flush();
  if (!a.follow) return kOk;
  net::ChatRoom::Events ev;
  ev.on_entry = [&](const room::Entry& e) {
    print(e);
    std::cout.flush();
  };
  ev.on_notice = [&](const std::string& m) { ctx.info(m); };
  s->room->set_events(ev);
  s->dht->run_until([] { return false; }, 0);
  return kOk;
}

int create(Context& ctx, const ChatArgs& a) {
  if (a.title.size() > room::kMaxTitleBytes)
    return ctx.fail(invalid_argument("a room title is at most " + std::to_string(room::kMaxTitleBytes) + " bytes"));
  auto home = ctx.home();
  if (!home.ok()) return ctx.fail(home.status());
  auto store = (*home)->writer();
  if (!store.ok()) return ctx.fail(store.status());
  auto identity = identity_key_pair(ctx);
  if (!identity.ok()) return ctx.fail(identity.status());
  auto ref = room::create_private(**store, *identity, identity->public_key, a.title);
  if (!ref.ok()) return ctx.fail(ref.status());
  if (ctx.json) {
    ctx.emit({{"key", to_hex(ref->key)}, {"id", keys::to_z32(ref->key)}, {"link", keys::link(ref->key)}, {"title", a.title}});
  } else {
    std::cout << keys::link(ref->key) << "\n";
    ctx.info("created a private room" + (a.title.empty() ? std::string() : " \"" + a.title + "\"") +
             "; share the link above, and /add members by their `p2p id` key");
  }
  return kOk;
}

// ---- the interactive room ----

class Interactive {
 public:
  Interactive(Context& ctx, Session& s, const ChatArgs& a) : ctx_(ctx), s_(s), args_(a) {}

  int run() {
    ChatTerminal term(s_.dht->loop(), {[this](const std::string& line) { on_line(line); }, [this] { quit_ = true; }});
    term_ = &term;
    show_history(args_.history);
    const net::ChatRoom& room = *s_.room;
    if (!room.ref().open && !room.is_member(room.identity()))
      say("you are not a member of this room yet: ask an admin to /add " + keys::to_z32(room.identity()));
    say("joined " + room_label() + " (/help for commands)");
    update_prompt();
    auto stop = s_.dht->run_until([this] { return quit_; }, 0);
    term.close();
    term_ = nullptr;
    return stop == dht::Runtime::Stop::signal ? 130 : kOk;
  }

  void warn(const std::string& text) { say(text); }

  net::ChatRoom::Events events() {
    net::ChatRoom::Events ev;
    ev.on_entry = [this](const room::Entry& e) {
      if (term_) term_->print(describe(*s_.room, e, false));
      if (e.message.kind == room::Kind::nick && e.author == s_.room->identity()) update_prompt();
    };
    ev.on_join = [this](const net::RoomPeer& p) { say(name_of(*s_.room, p.identity) + " is here"); };
    ev.on_leave = [this](const net::RoomPeer& p) { say(name_of(*s_.room, p.identity) + " left"); };
    ev.on_notice = [this](const std::string& m) {
      if (verbose_) say(m);
    };
    return ev;
  }

 private:
  void say(const std::string& text) {
    if (term_) term_->print("-- " + text);
  }
  std::string room_label() const {
    const auto& r = s_.room->ref();
    return r.open ? "room " + r.name : "private room " + keys::to_z32(r.key).substr(0, 12) + "...";
  }
  void update_prompt() {
    if (!term_) return;
    std::string nick = s_.room->nick_of(s_.room->identity());
    term_->set_prompt((nick.empty() ? short_id(s_.room->identity()) : printable(nick)) + "> ");
  }

  void show_history(size_t n) {
    std::deque<std::string> last;
    Status st = s_.room->history([&](const room::Entry& e) {
      last.push_back(describe(*s_.room, e, true));
      if (last.size() > n) last.pop_front();
    });
    if (!st.ok()) say("history: " + st.message());
    for (const auto& line : last) term_->print(line);
  }

  void post(room::Message m) {
    auto r = s_.room->post(std::move(m));
    if (!r.ok()) say(r.status().message());
  }

  std::optional<Key32> member_key(const std::string& text) {
    auto key = keys::parse(text);
    if (!key) say("not a key: " + text + " (" + keys::accepted_forms() + ")");
    return key;
  }

  bool require_admin() {
    if (s_.room->ref().open) {
      say("an open room has no members to manage: create a private one with `p2p chat create`");
      return false;
    }
    if (!s_.room->is_admin(s_.room->identity())) {
      say("only the room's admins can add and remove members");
      return false;
    }
    return true;
  }

  void on_line(const std::string& line) {
    if (line.empty()) return;
    if (line[0] != '/') {
      if (line.size() > room::kMaxTextBytes) return say("a message is at most " + std::to_string(room::kMaxTextBytes) + " bytes");
      if (!valid_utf8(line)) return say("the message is not valid UTF-8");
      room::Message m;
      m.kind = room::Kind::text;
      m.text = line;
      return post(std::move(m));
    }
    std::string cmd = line.substr(0, line.find(' '));
    std::string arg = line.size() > cmd.size() ? line.substr(cmd.size() + 1) : "";
    while (!arg.empty() && arg.back() == ' ') arg.pop_back();
    if (cmd == "/quit" || cmd == "/exit") {
      quit_ = true;
    } else if (cmd == "/nick") {
      if (arg.empty() || arg.size() > room::kMaxNickBytes || !valid_utf8(arg) || printable(arg) != arg)
        return say("usage: /nick NAME (1 to " + std::to_string(room::kMaxNickBytes) + " bytes of printable text)");
      room::Message m;
      m.kind = room::Kind::nick;
      m.text = arg;
      post(std::move(m));
    } else if (cmd == "/who") {
      who();
    } else if (cmd == "/history") {
      size_t n = arg.empty() ? kShownHistory : static_cast<size_t>(std::strtoull(arg.c_str(), nullptr, 10));
      show_history(n == 0 ? kShownHistory : n);
    } else if (cmd == "/invite") {
      const auto& r = s_.room->ref();
      say(r.open ? "anyone can join with: p2p chat " + r.name : "invite link: " + keys::link(r.key));
    } else if (cmd == "/add" || cmd == "/remove") {
      std::string key_text = arg.substr(0, arg.find(' '));
      bool admin = arg.find(" admin") != std::string::npos;
      auto key = member_key(key_text);
      if (!key || !require_admin()) return;
      room::Message m;
      m.kind = cmd == "/add" ? room::Kind::add : room::Kind::remove;
      m.member = *key;
      m.admin = admin && cmd == "/add";
      post(std::move(m));
    } else if (cmd == "/verbose") {
      verbose_ = !verbose_;
      say(std::string("network notices ") + (verbose_ ? "on" : "off"));
    } else if (cmd == "/help") {
      say("/nick NAME · /who · /history [N] · /invite · /add KEY [admin] · /remove KEY · /verbose · /quit");
    } else {
      say("unknown command " + cmd + " (/help lists them)");
    }
  }

  void who() {
    std::set<Key32> online;
    for (const auto& p : s_.room->online()) online.insert(p.identity);
    online.insert(s_.room->identity());
    auto members = s_.room->members();
    say(std::to_string(members.size()) + " member(s), " + std::to_string(online.size()) + " online:");
    for (const auto& m : members) {
      std::string line = "   " + (m.nick.empty() ? short_id(m.identity) : printable(m.nick) + " (" + short_id(m.identity) + ")");
      if (m.admin) line += " admin";
      if (online.count(m.identity)) line += " · online";
      if (m.identity == s_.room->identity()) line += " · you";
      if (term_) term_->print(line);
    }
  }

  Context& ctx_;
  Session& s_;
  const ChatArgs& args_;
  ChatTerminal* term_ = nullptr;
  bool quit_ = false, verbose_ = false;
};

int interactive(Context& ctx, const ChatArgs& a) {
  auto s = open_room(ctx, a.room);
  if (!s.ok()) return ctx.fail(s.status());
  Interactive ui(ctx, *s, a);
  if (Status st = s->room->update(); !st.ok()) return ctx.fail(st);
  if (Status st = go_online(ctx, *s, true, ui.events(), [&ui](const std::string& m) { ui.warn(m); }); !st.ok())
    return ctx.fail(st);
  return ui.run();
}

}  // namespace

void add_chat_commands(CLI::App& app, Context& ctx) {
  auto a = std::make_shared<ChatArgs>();
  auto* chat = app.add_subcommand("chat", "Chat rooms of many writers: interactive, or send and log for scripts");
  chat->add_option("ROOM", a->room, "An open room's name, or a private room's link (interactive)");
  chat->add_option("--history", a->history, "Entries shown when joining")->capture_default_str();
  chat->callback([chat, &ctx, a] {
    if (chat->get_subcommands().empty()) {
      if (a->room.empty()) throw CLI::RequiredError("ROOM");
      ctx.run = [&ctx, a] { return interactive(ctx, *a); };
    }
  });

  auto* join = chat->add_subcommand("join", "Join a room interactively (the same as `p2p chat ROOM`)");
  join->add_option("ROOM", a->room, "An open room's name, or a private room's link")->required();
  join->add_option("--history", a->history, "Entries shown when joining")->capture_default_str();
  join->callback([&ctx, a] { ctx.run = [&ctx, a] { return interactive(ctx, *a); }; });

  auto* create_cmd = chat->add_subcommand("create", "Create a private room and print its invite link");
  create_cmd->add_option("NAME", a->title, "A title for the room (default: none)");
  create_cmd->callback([&ctx, a] { ctx.run = [&ctx, a] { return create(ctx, *a); }; });

  auto* send_cmd = chat->add_subcommand("send", "Append a message; exit 0 once a peer holds it, 1 when none did in time");
  send_cmd->add_option("ROOM", a->room, "An open room's name, or a private room's link")->required();
  send_cmd->add_option("MESSAGE", a->message, "The text; from stdin when absent or -");
  send_cmd->add_option("--timeout", a->timeout_s, "Seconds to wait for a peer")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  send_cmd->callback([&ctx, a] { ctx.run = [&ctx, a] { return send(ctx, *a); }; });

  auto* log_cmd = chat->add_subcommand("log", "Print the room's history in room order");
  log_cmd->add_option("ROOM", a->room, "An open room's name, or a private room's link")->required();
  log_cmd->add_flag("--follow,-f", a->follow, "Go on printing new messages as they arrive");
  log_cmd->add_flag("--sync", a->sync, "First fetch what peers hold (until quiet, at most --timeout)");
  log_cmd->add_option("--since", a->since, "Only entries from this time on: 90s, 10m, 2h, 3d, seconds since 1970, or 2026-12-02T10:00:00Z");
  log_cmd->add_option("--timeout", a->timeout_s, "Seconds --sync waits at most")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  log_cmd->callback([&ctx, a] { ctx.run = [&ctx, a] { return log(ctx, *a); }; });
}

}  // namespace p2p::cli
