#include "tools/chat_terminal.h"

#include <unistd.h>

#include <cstdio>
#include <utility>
#include <vector>

namespace p2p::cli {

namespace {

size_t code_points(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// The last `width` code points of `s` (a long input line scrolls sideways).
std::string tail(const std::string& s, size_t width) {
  std::vector<size_t> starts;
  for (size_t i = 0; i < s.size(); i++)
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) starts.push_back(i);
  return starts.size() <= width ? s : s.substr(starts[starts.size() - width]);
}

}  // namespace

ChatTerminal::ChatTerminal(uv_loop_t* loop, Handlers handlers) : loop_(loop), handlers_(std::move(handlers)) {
  uv_handle_type in = uv_guess_handle(0);
  raw_ = in == UV_TTY && uv_guess_handle(1) == UV_TTY;
  if (in == UV_TTY) {
    auto* tty = new uv_tty_t;
    uv_tty_init(loop_, tty, 0, 1);
    if (raw_) uv_tty_set_mode(tty, UV_TTY_MODE_RAW);
    input_ = reinterpret_cast<uv_stream_t*>(tty);
  } else if (in == UV_NAMED_PIPE || in == UV_TCP) {
    auto* pipe = new uv_pipe_t;
    uv_pipe_init(loop_, pipe, 0);
    uv_pipe_open(pipe, 0);
    input_ = reinterpret_cast<uv_stream_t*>(pipe);
  }
  if (!input_) {  // a file (or nothing): read it all now, it cannot block for long
    char buf[65536];
    ssize_t n;
    std::string all;
    while ((n = ::read(0, buf, sizeof buf)) > 0 && all.size() < 64 * 1024 * 1024) all.append(buf, static_cast<size_t>(n));
    on_input(all.data(), all.size());
    if (!pending_.empty() && handlers_.on_line) handlers_.on_line(std::exchange(pending_, ""));
    return;
  }
  input_->data = this;
  uv_read_start(
      input_,
      [](uv_handle_t*, size_t, uv_buf_t* b) {
        static char buf[4096];
        *b = uv_buf_init(buf, sizeof buf);
      },
      [](uv_stream_t* s, ssize_t n, const uv_buf_t* b) {
        auto* t = static_cast<ChatTerminal*>(s->data);
        if (!t) return;
        if (n > 0) {
          t->on_input(b->base, static_cast<size_t>(n));
        } else if (n < 0) {  // end of input
          uv_read_stop(s);
          if (!t->pending_.empty() && t->handlers_.on_line) t->handlers_.on_line(std::exchange(t->pending_, ""));
          if (t->handlers_.on_quit) t->handlers_.on_quit();
        }
      });
  if (raw_) redraw();
}

ChatTerminal::~ChatTerminal() { close(); }

void ChatTerminal::close() {
  if (closed_) return;
  closed_ = true;
  if (raw_) {
    write("\r\x1b[K");
    uv_tty_reset_mode();
  }
  if (input_) {
    input_->data = nullptr;
    uv_read_stop(input_);
    uv_close(reinterpret_cast<uv_handle_t*>(input_), [](uv_handle_t* h) {
      if (h->type == UV_TTY) delete reinterpret_cast<uv_tty_t*>(h);
      else delete reinterpret_cast<uv_pipe_t*>(h);
    });
    input_ = nullptr;
  }
}

void ChatTerminal::write(const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::write(1, s.data() + off, s.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

void ChatTerminal::set_prompt(std::string prompt) {
  prompt_ = std::move(prompt);
  if (raw_ && !closed_) redraw();
}

void ChatTerminal::print(const std::string& text) {
  if (!raw_) {
    write(text + "\n");
    return;
  }
  // Raw mode does no output processing: lines end in CR LF.
  std::string out = "\r\x1b[K";
  for (char c : text) {
    if (c == '\n') out += "\r\n";
    else out += c;
  }
  out += "\r\n";
  write(out);
  if (!closed_) redraw();
}

void ChatTerminal::redraw() {
  int width = 80, height = 0;
  if (input_ && input_->type == UV_TTY) uv_tty_get_winsize(reinterpret_cast<uv_tty_t*>(input_), &width, &height);
  size_t room = width > static_cast<int>(code_points(prompt_)) + 2 ? static_cast<size_t>(width) - code_points(prompt_) - 1 : 1;
  write("\r\x1b[K" + prompt_ + tail(line_, room));
}

void ChatTerminal::on_input(const char* data, size_t n) {
  if (!raw_) {  // lines from a pipe or file
    for (size_t i = 0; i < n; i++) {
      if (data[i] == '\n') {
        if (!pending_.empty() && pending_.back() == '\r') pending_.pop_back();
        if (handlers_.on_line) handlers_.on_line(std::exchange(pending_, ""));
      } else if (pending_.size() < kMaxInput) {
        pending_ += data[i];
      }
    }
    return;
  }
  for (size_t i = 0; i < n && !closed_; i++) feed(static_cast<unsigned char>(data[i]));
  if (!closed_) redraw();
}

void ChatTerminal::feed(unsigned char c) {
  if (escape_ == 1) {  // ESC: a CSI sequence follows '[', anything else is one key
    escape_ = c == '[' || c == 'O' ? 2 : 0;
    return;
  }
  if (escape_ == 2) {  // arrows and function keys: skipped up to the final byte
    if (c >= 0x40 && c <= 0x7E) escape_ = 0;
    return;
  }
  switch (c) {
    case 0x1B:
      escape_ = 1;
      return;
    case '\r':
    case '\n': {
      std::string line = std::exchange(line_, "");
      redraw();
      if (handlers_.on_line) handlers_.on_line(line);
      return;
    }
    case 0x03:  // Ctrl-C
      if (handlers_.on_quit) handlers_.on_quit();
      return;
    case 0x04:  // Ctrl-D: leaves on an empty line
      if (line_.empty() && handlers_.on_quit) handlers_.on_quit();
      return;
    case 0x7F:
    case 0x08:  // backspace: one whole code point
      while (!line_.empty() && (static_cast<unsigned char>(line_.back()) & 0xC0) == 0x80) line_.pop_back();
      if (!line_.empty()) line_.pop_back();
      return;
    case 0x15:  // Ctrl-U
      line_.clear();
      return;
    case 0x17:  // Ctrl-W: the last word
      while (!line_.empty() && line_.back() == ' ') line_.pop_back();
      while (!line_.empty() && line_.back() != ' ') line_.pop_back();
      return;
    default:
      if (c < 0x20) return;  // other control keys do nothing
      if (line_.size() < kMaxInput) line_ += static_cast<char>(c);
  }
}

}  // namespace p2p::cli
