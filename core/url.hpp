#pragma once
// URLs parsed once, with libcurl's URL API (curl_url): IPv6 literals, default ports, percent
// encoding and user info are libcurl's business, not ours.

#include <map>
#include <string>

#include "core/result.hpp"

namespace autopod::core {

struct Url {
  std::string scheme;  // lowercase: "http", "https"
  std::string host;    // without brackets: "::1", "127.0.0.1", "example.org"
  int port = 0;        // the URL's, else the scheme's default
  std::string path;    // "/" when the URL has none; percent-encoded as given
  std::string query;   // without "?"; empty when none

  // "127.0.0.1:8188", "[::1]:8188": what an HTTP Host header and a TCP connect want.
  std::string authority() const;
  // "http://[::1]:8188" without path, query or credentials: safe to log.
  std::string origin() const;
};

// Percent-encodes everything but RFC 3986's unreserved characters, for a query value.
std::string url_encode(const std::string& text);

// Percent-decodes `text` ('+' stays '+', as in a path).
std::string url_decode(const std::string& text);

// The name=value pairs of a query string (without "?"), percent- and '+'-decoded as a form
// would be; a later name wins, a name without '=' maps to "".
std::map<std::string, std::string> parse_query(const std::string& query);

// invalid_argument naming `url` when libcurl cannot parse it or it has no host.
Result<Url> parse_url(const std::string& url);

}  // namespace autopod::core
