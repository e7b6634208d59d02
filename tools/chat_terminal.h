// The interactive chat's terminal: one input line at the bottom that
// incoming text never garbles (it is printed above the line, which is then
// redrawn). Raw mode on a TTY; plain lines from a pipe or file otherwise.
#pragma once

#include <uv.h>

#include <functional>
#include <string>

namespace p2p::cli {

class ChatTerminal {
 public:
  struct Handlers {
    std::function<void(const std::string& line)> on_line;
    std::function<void()> on_quit;  // Ctrl-C, Ctrl-D on an empty line, end of input
  };
  // Longest input line kept (the room's message limit is checked on send).
  static constexpr size_t kMaxInput = 16 * 1024;

  ChatTerminal(uv_loop_t* loop, Handlers handlers);
  ~ChatTerminal();
  ChatTerminal(const ChatTerminal&) = delete;
  ChatTerminal& operator=(const ChatTerminal&) = delete;

  // Whether stdin and stdout are both terminals (the line editor is used).
  bool interactive() const { return raw_; }
  void set_prompt(std::string prompt);
  // Prints `text` (one or more lines) above the input line.
  void print(const std::string& text);
  // Restores the terminal (also done by the destructor).
  void close();

 private:
  void on_input(const char* data, size_t n);
  void feed(unsigned char c);
  void redraw();
  void write(const std::string& s);

  uv_loop_t* loop_;
  Handlers handlers_;
  uv_stream_t* input_ = nullptr;
  bool raw_ = false, closed_ = false;
  std::string prompt_ = "> ", line_, pending_;  // pending_: a partial line from a pipe
  int escape_ = 0;  // inside an escape sequence: 1 after ESC, 2 after ESC [
};

}  // namespace p2p::cli
