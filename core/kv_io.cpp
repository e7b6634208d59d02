#include "core/kv_io.h"

#include <nlohmann/json.hpp>

namespace p2p::kv_io {

std::string escape(ByteView b) {
  static const char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(b.size());
  size_t i = 0;
  while (i < b.size()) {
    uint8_t c = b[i];
    if (c == '\\') out += "\\\\";
    else if (c == '\t') out += "\\t";
    else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c < 0x20 || c == 0x7f) out += std::string("\\x") + hex[c >> 4] + hex[c & 15];
    else if (c < 0x80) out += static_cast<char>(c);
    else {
      // Copy a whole valid UTF-8 sequence; escape a stray byte.
      size_t n = (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 1;
      if (n > 1 && i + n <= b.size() && is_valid_utf8(b.subspan(i, n))) {
        out.append(reinterpret_cast<const char*>(b.data() + i), n);
        i += n;
        continue;
      }
      out += std::string("\\x") + hex[c >> 4] + hex[c & 15];
    }
    i++;
  }
  return out;
}

Result<Bytes> unescape(std::string_view t) {
  Bytes out;
  out.reserve(t.size());
  for (size_t i = 0; i < t.size(); i++) {
    if (t[i] != '\\') {
      out.push_back(static_cast<uint8_t>(t[i]));
      continue;
    }
    if (++i >= t.size()) return invalid_argument("a line ends in a lone backslash");
    switch (t[i]) {
      case '\\': out.push_back('\\'); break;
      case 't': out.push_back('\t'); break;
      case 'n': out.push_back('\n'); break;
      case 'r': out.push_back('\r'); break;
      case 'x': {
        auto b = i + 2 < t.size() ? from_hex(t.substr(i + 1, 2)) : std::nullopt;
        if (!b) return invalid_argument("\\x must be followed by two hex digits");
        out.push_back((*b)[0]);
        i += 2;
        break;
      }
      default: return invalid_argument(std::string("unknown escape \\") + t[i]);
    }
  }
  return out;
}

std::string tsv_line(ByteView key, ByteView value) {
  std::string k = escape(key);
  // A leading '{' would read back as JSON: escape it.
  if (!k.empty() && k[0] == '{') k = "\\x7b" + k.substr(1);
  return k + "\t" + escape(value);
}

namespace {
void put_field(nlohmann::json& j, const char* field, const char* encoding_field, ByteView b) {
  if (is_valid_utf8(b)) {
    j[field] = std::string(as_chars(b));
  } else {
    j[field] = to_base64(b);
    j[encoding_field] = "base64";
  }
}

Result<Bytes> get_field(const nlohmann::json& j, const char* field, const char* encoding_field) {
  auto it = j.find(field);
  if (it == j.end() || !it->is_string()) return invalid_argument(std::string("\"") + field + "\" must be a string");
  const std::string& s = it->get_ref<const std::string&>();
  auto enc = j.find(encoding_field);
  if (enc == j.end() || (enc->is_string() && *enc == "utf-8")) return to_bytes(as_bytes(s));
  if (enc->is_string() && *enc == "base64") {
    auto b = from_base64(s);
    if (!b) return invalid_argument(std::string("\"") + field + "\" is not valid base64");
    return *b;
  }
  return invalid_argument(std::string("\"") + encoding_field + "\" must be \"base64\" or \"utf-8\"");
}
}  // namespace

std::string json_line(ByteView key, const ByteView* value) {
  nlohmann::json j = nlohmann::json::object();
  put_field(j, "key", "keyEncoding", key);
  if (value) put_field(j, "value", "encoding", *value);
  return j.dump();
}

Result<Record> parse_line(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  size_t first = line.find_first_not_of(" \t");
  if (first != std::string_view::npos && line[first] == '{') {
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return invalid_argument("not a valid JSON object");
    auto key = get_field(j, "key", "keyEncoding");
    if (!key.ok()) return key.status();
    auto value = get_field(j, "value", "encoding");
    if (!value.ok()) return value.status();
    return Record{std::move(*key), std::move(*value)};
  }
  size_t tab = line.find('\t');
  if (tab == std::string_view::npos) return invalid_argument("expected KEY<tab>VALUE or a JSON object");
  auto key = unescape(line.substr(0, tab));
  if (!key.ok()) return key.status();
  auto value = unescape(line.substr(tab + 1));
  if (!value.ok()) return value.status();
  return Record{std::move(*key), std::move(*value)};
}

}  // namespace p2p::kv_io
