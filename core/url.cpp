#include "core/url.hpp"

#include <curl/curl.h>

#include <memory>

namespace autopod::core {

namespace {

struct UrlDeleter {
  void operator()(CURLU* u) const { curl_url_cleanup(u); }
};

std::string part(CURLU* u, CURLUPart which, unsigned flags = 0) {
  char* value = nullptr;
  if (curl_url_get(u, which, &value, flags) != CURLUE_OK || !value) return {};
  std::string out(value);
  curl_free(value);
  return out;
}

}  // namespace

std::string url_encode(const std::string& text) {
  // A null handle is allowed since libcurl 7.82.
  char* out = curl_easy_escape(nullptr, text.data(), static_cast<int>(text.size()));
  if (!out) return {};
  std::string s(out);
  curl_free(out);
  return s;
}

std::string url_decode(const std::string& text) {
  int length = 0;
  char* out = curl_easy_unescape(nullptr, text.data(), static_cast<int>(text.size()), &length);
  if (!out) return text;
  std::string s(out, static_cast<std::size_t>(length));
  curl_free(out);
  return s;
}

namespace {

std::string form_decode(std::string text) {
  for (char& c : text)
    if (c == '+') c = ' ';
  return url_decode(text);
}

}  // namespace

std::map<std::string, std::string> parse_query(const std::string& query) {
  std::map<std::string, std::string> out;
  std::size_t start = 0;
  while (start <= query.size()) {
    auto amp = query.find('&', start);
    std::string pair = query.substr(start, amp == std::string::npos ? std::string::npos : amp - start);
    if (!pair.empty()) {
      auto eq = pair.find('=');
      out[form_decode(pair.substr(0, eq))] = eq == std::string::npos ? "" : form_decode(pair.substr(eq + 1));
    }
    if (amp == std::string::npos) break;
    start = amp + 1;
  }
  return out;
}

std::string Url::authority() const {
  bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::string Url::origin() const { return scheme + "://" + authority(); }

Result<Url> parse_url(const std::string& text) {
  std::unique_ptr<CURLU, UrlDeleter> u(curl_url());
  if (!u) return fail(ErrorCode::internal, "out of memory parsing a url");
  if (auto rc = curl_url_set(u.get(), CURLUPART_URL, text.c_str(), 0); rc != CURLUE_OK)
    return fail(ErrorCode::invalid_argument,
                "'" + text + "' is not a url: " + curl_url_strerror(rc),
                "write it as scheme://host:port/path, e.g. http://127.0.0.1:8188");
  Url url;
  url.scheme = part(u.get(), CURLUPART_SCHEME);
  url.host = part(u.get(), CURLUPART_HOST);
  if (url.host.size() >= 2 && url.host.front() == '[' && url.host.back() == ']')
    url.host = url.host.substr(1, url.host.size() - 2);
  if (url.host.empty()) return fail(ErrorCode::invalid_argument, "'" + text + "' has no host");
  std::string port = part(u.get(), CURLUPART_PORT, CURLU_DEFAULT_PORT);
  if (port.empty()) return fail(ErrorCode::invalid_argument, "'" + text + "' has no port");
  url.port = std::stoi(port);  // libcurl checked it: digits, 0-65535
  url.path = part(u.get(), CURLUPART_PATH);
  url.query = part(u.get(), CURLUPART_QUERY);
  return url;
}

}  // namespace autopod::core
