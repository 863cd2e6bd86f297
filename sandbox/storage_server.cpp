// The storage fake (see storage_server.hpp): Beast parses requests; answers are written by hand
// so that bodies stream, are rate-capped, and can be cut, stalled or lie about their length.

#include "sandbox/storage_server.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "core/url.hpp"

namespace autopod::sandbox {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

struct Object {
  std::shared_ptr<const std::string> bytes;
  int fd = -1;
  std::int64_t size = 0;
  std::string etag;
  std::string disposition;
  std::string type = "application/octet-stream";
};

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string xml_error(const std::string& code, const std::string& message) {
  return "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>" + code + "</Code><Message>" +
         message + "</Message></Error>";
}

}  // namespace

struct StorageServer::Impl {
  StorageOptions options;
  mutable std::mutex mutex;
  std::condition_variable cv;
  std::map<std::string, Object> objects;
  StorageFaults faults;
  std::vector<StorageRequest> log;
  std::int64_t sent = 0;
  int auth_seen = 0;
  int epoch = 0;
  std::string secret = "storage-secret";
  asio::io_context io;
  tcp::acceptor acceptor{io};
  std::thread accept_thread;
  std::atomic<bool> stopping{false};
  std::set<tcp::socket*> open;
  int active = 0;
  int port = 0;

  std::string sign(const std::string& name, std::int64_t expires, int ep) const {
    return std::to_string(std::hash<std::string>{}(secret + name + std::to_string(expires) + ":" +
                                                   std::to_string(ep)));
  }

  bool write(tcp::socket& s, const std::string& data) {
    beast::error_code ec;
    asio::write(s, asio::buffer(data), ec);
    return !ec;
  }

  bool reply(tcp::socket& s, int status, const std::string& reason, const std::string& body,
             const std::string& extra = {}) {
    return write(s, "HTTP/1.1 " + std::to_string(status) + " " + reason +
                        "\r\nContent-Type: application/xml\r\nContent-Length: " +
                        std::to_string(body.size()) + "\r\n" + extra + "\r\n" + body);
  }

  // Sleeps in slices so stop() is never kept waiting; false when stopping.
  bool nap(std::chrono::milliseconds d) {
    std::unique_lock lock(mutex);
    return !cv.wait_for(lock, d, [&] { return stopping.load(); });
  }

  bool serve_one(tcp::socket& s, const http::request<http::empty_body>& req);
  bool send_body(tcp::socket& s, const Object& o, std::int64_t first, std::int64_t last,
                 std::int64_t announced, bool& keep);
  void serve(tcp::socket& s);
  void accept_loop();
};

bool StorageServer::Impl::send_body(tcp::socket& s, const Object& o, std::int64_t first,
                                    std::int64_t last, std::int64_t announced, bool& keep) {
  std::int64_t len = last - first + 1, rate;
  bool wrong, stall = false, cut = false;
  double cut_at;
  std::chrono::milliseconds stall_for;
  {
    std::lock_guard lock(mutex);
    rate = options.bytes_per_sec_per_connection;
    wrong = faults.wrong_bytes;
    if (!wrong && faults.wrong_bodies > 0 && o.size / 2 >= first && o.size / 2 <= last)
      wrong = true, --faults.wrong_bodies;
    cut_at = faults.cut_at;
    std::int64_t cut_byte = static_cast<std::int64_t>(cut_at * static_cast<double>(o.size));
    if (faults.cuts > 0 && cut_byte >= first && cut_byte <= last) cut = true, --faults.cuts;
    if (faults.stalls > 0) stall = true, --faults.stalls;
    stall_for = faults.stall;
  }
  std::int64_t end = cut ? static_cast<std::int64_t>(cut_at * static_cast<double>(o.size)) : last + 1;
  auto start = std::chrono::steady_clock::now();
  std::string buf;
  std::int64_t done = 0;
  for (std::int64_t pos = first; pos < end;) {
    std::int64_t n = std::min<std::int64_t>(256 * 1024, end - pos);
    if (o.fd >= 0) {
      buf.resize(static_cast<std::size_t>(n));
      ssize_t got = ::pread(o.fd, buf.data(), buf.size(), pos);
      if (got != n) return false;
    } else {
      buf.assign(*o.bytes, static_cast<std::size_t>(pos), static_cast<std::size_t>(n));
    }
    std::int64_t flip = o.size / 2;
    if (wrong && flip >= pos && flip < pos + n) buf[static_cast<std::size_t>(flip - pos)] ^= 0x5a;
    if (!write(s, buf)) return false;
    pos += n, done += n;
    {
      std::lock_guard lock(mutex);
      sent += n;
    }
    if (stall && done >= len / 2) {
      stall = false;
      if (!nap(stall_for)) return false;
    }
    if (rate > 0) {
      auto due = start + std::chrono::microseconds(done * 1000000 / rate);
      auto now = std::chrono::steady_clock::now();
      if (due > now && !nap(std::chrono::duration_cast<std::chrono::milliseconds>(due - now)))
        return false;
    }
  }
  keep = !cut && announced == len;
  return keep;
}

bool StorageServer::Impl::serve_one(tcp::socket& s, const http::request<http::empty_body>& req) {
  StorageRequest entry{std::string(req.method_string()), std::string(req.target()),
                       std::string(req[http::field::range]), std::string(req[http::field::if_range]),
                       req.find(http::field::authorization) != req.end(), 0};
  auto record = [&](int status) {
    entry.status = status;
    std::lock_guard lock(mutex);
    log.push_back(entry);
    if (entry.authorization) ++auth_seen;
  };
  std::string target(req.target());
  auto qmark = target.find('?');
  std::string path = target.substr(0, qmark);
  auto query = core::parse_query(qmark == std::string::npos ? "" : target.substr(qmark + 1));
  if (entry.authorization) {
    record(400);  // S3's answer to a token beside a signature
    return reply(s, 400, "Bad Request", xml_error("InvalidArgument", "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified"));
  }
  Object o;
  int burst_status = 0;
  {
    std::lock_guard lock(mutex);
    if (faults.status_burst > 0) --faults.status_burst, burst_status = faults.burst_status;
    auto it = path.rfind("/o/", 0) == 0 ? objects.find(path.substr(3)) : objects.end();
    if (it != objects.end()) o = it->second;  // fd and bytes copied; the map may change
    else burst_status = burst_status ? burst_status : 404;
  }
  if (burst_status) {
    record(burst_status);
    return reply(s, burst_status, burst_status == 404 ? "Not Found" : "Error",
                 xml_error(burst_status == 404 ? "NoSuchKey" : "SlowDown", "injected"));
  }
  if (query.count("sig") || options.require_signature) {
    std::int64_t expires = query.count("expires") ? std::atoll(query["expires"].c_str()) : 0;
    int ep = query.count("epoch") ? std::atoi(query["epoch"].c_str()) : -1;
    bool valid, expired;
    {
      std::lock_guard lock(mutex);
      valid = query["sig"] == sign(path.substr(3), expires, ep);
      expired = ep != epoch || unix_now() > expires;
    }
    if (!valid || expired) {
      record(403);
      return reply(s, 403, "Forbidden", xml_error("AccessDenied", valid ? "Request has expired" : "SignatureDoesNotMatch"));
    }
  }
  if (options.delay.count() > 0 && !nap(options.delay)) return false;
  std::int64_t first = 0, last = o.size - 1;
  bool partial = false;
  std::string range = entry.range;
  bool ignore = false;
  {
    std::lock_guard lock(mutex);
    if (!range.empty() && faults.ignore_range > 0) --faults.ignore_range, ignore = true;
  }
  if (!range.empty() && !ignore && (entry.if_range.empty() || entry.if_range == o.etag)) {
    long long a = -1, b = -1;
    if (std::sscanf(range.c_str(), "bytes=%lld-%lld", &a, &b) >= 1 && a >= 0) {
      if (a >= o.size) {
        record(416);
        return reply(s, 416, "Range Not Satisfiable", "", "Content-Range: bytes */" + std::to_string(o.size) + "\r\n");
      }
      first = a, last = b < 0 || b >= o.size ? o.size - 1 : b, partial = true;
    }
  }
  std::int64_t len = last - first + 1;
  std::int64_t announced = len;
  {
    std::lock_guard lock(mutex);
    if (faults.lying_length > 0 && req.method() == http::verb::get) --faults.lying_length, announced = len + 4096;
  }
  std::string head = "HTTP/1.1 " + std::string(partial ? "206 Partial Content" : "200 OK") +
                     "\r\nContent-Type: " + o.type + "\r\nContent-Length: " + std::to_string(announced) +
                     "\r\nAccept-Ranges: bytes\r\nETag: " + o.etag +
                     "\r\nLast-Modified: Tue, 01 Sep 2026 10:00:00 GMT\r\n";
  if (partial)
    head += "Content-Range: bytes " + std::to_string(first) + "-" + std::to_string(last) + "/" + std::to_string(o.size) + "\r\n";
  if (!o.disposition.empty()) head += "Content-Disposition: " + o.disposition + "\r\n";
  record(partial ? 206 : 200);
  if (!write(s, head + "\r\n")) return false;
  if (req.method() == http::verb::head || len <= 0) return true;
  bool keep = true;
  return send_body(s, o, first, last, announced, keep);
}

void StorageServer::Impl::serve(tcp::socket& s) {
  beast::flat_buffer buffer;
  for (;;) {
    http::request_parser<http::empty_body> parser;
    beast::error_code ec;
    http::read(s, buffer, parser, ec);
    if (ec || stopping) break;
    if (!serve_one(s, parser.get()) || !parser.get().keep_alive()) break;
  }
  beast::error_code ec;
  s.shutdown(tcp::socket::shutdown_both, ec);
}

void StorageServer::Impl::accept_loop() {
  for (;;) {
    tcp::socket socket(io);
    beast::error_code ec;
    acceptor.accept(socket, ec);
    if (stopping) return;
    if (ec) continue;
    std::lock_guard lock(mutex);
    ++active;
    // The socket lives on the heap and dies before `active` drops: once stop() sees zero the
    // io_context (and the socket service a socket's destructor uses) may be gone.
    auto owned = std::make_unique<tcp::socket>(std::move(socket));
    std::thread([this, s = std::move(owned)]() mutable {
      {
        std::lock_guard l(mutex);
        open.insert(s.get());
      }
      serve(*s);
      std::lock_guard l(mutex);
      open.erase(s.get());
      s.reset();
      --active;
      cv.notify_all();
    }).detach();
  }
}

StorageServer::StorageServer(StorageOptions options) : m_impl(std::make_unique<Impl>()) {
  m_impl->options = options;
}

StorageServer::~StorageServer() {
  stop();
  for (auto& [name, o] : m_impl->objects)
    if (o.fd >= 0) ::close(o.fd);
}

core::Status StorageServer::start(const std::string& address, int port) {
  beast::error_code ec;
  tcp::endpoint ep(asio::ip::make_address(address, ec), static_cast<unsigned short>(port));
  if (ec) return core::fail(core::ErrorCode::invalid_argument, "bad address " + address);
  auto& a = m_impl->acceptor;
  a.open(ep.protocol(), ec);
  if (!ec) a.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) a.bind(ep, ec);
  if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return core::fail(core::ErrorCode::io, "storage fake cannot listen: " + ec.message());
  m_impl->port = a.local_endpoint().port();
  m_impl->accept_thread = std::thread([this] { m_impl->accept_loop(); });
  return {};
}

void StorageServer::stop() {
  if (!m_impl->accept_thread.joinable()) return;
  m_impl->stopping = true;
  ::shutdown(m_impl->acceptor.native_handle(), SHUT_RDWR);
  m_impl->accept_thread.join();
  beast::error_code ec;
  m_impl->acceptor.close(ec);
  std::unique_lock lock(m_impl->mutex);
  for (auto* s : m_impl->open) s->shutdown(tcp::socket::shutdown_both, ec);
  m_impl->cv.notify_all();
  m_impl->cv.wait(lock, [&] { return m_impl->active == 0; });
}

std::string StorageServer::url() const { return "http://127.0.0.1:" + std::to_string(m_impl->port); }

void StorageServer::put(const std::string& name, std::string bytes, std::string disposition,
                        std::string type) {
  std::lock_guard lock(m_impl->mutex);
  Object o;
  o.size = static_cast<std::int64_t>(bytes.size());
  o.etag = "\"" + std::to_string(std::hash<std::string>{}(bytes)) + "\"";
  o.bytes = std::make_shared<const std::string>(std::move(bytes));
  o.disposition = std::move(disposition);
  o.type = std::move(type);
  m_impl->objects[name] = std::move(o);
}

void StorageServer::put_file(const std::string& name, const std::filesystem::path& path) {
  std::lock_guard lock(m_impl->mutex);
  Object o;
  o.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  o.size = static_cast<std::int64_t>(std::filesystem::file_size(path));
  o.etag = "\"file-" + std::to_string(o.size) + "\"";
  m_impl->objects[name] = std::move(o);
}

std::string StorageServer::signed_url(const std::string& name, std::chrono::seconds ttl) const {
  std::lock_guard lock(m_impl->mutex);
  std::int64_t expires = unix_now() + ttl.count();
  return url() + "/o/" + name + "?X-Amz-Algorithm=AWS4-HMAC-SHA256&expires=" + std::to_string(expires) +
         "&epoch=" + std::to_string(m_impl->epoch) + "&sig=" + m_impl->sign(name, expires, m_impl->epoch) +
         "&response-content-disposition=" + core::url_encode("attachment; filename=\"" + name + "\"");
}

std::string StorageServer::plain_url(const std::string& name) const { return url() + "/o/" + name; }

void StorageServer::expire_signatures() {
  std::lock_guard lock(m_impl->mutex);
  ++m_impl->epoch;
}

std::string StorageServer::etag(const std::string& name) const {
  std::lock_guard lock(m_impl->mutex);
  auto it = m_impl->objects.find(name);
  return it == m_impl->objects.end() ? "" : it->second.etag;
}

void StorageServer::set_faults(StorageFaults faults) {
  std::lock_guard lock(m_impl->mutex);
  m_impl->faults = faults;
}

void StorageServer::set_rate(std::int64_t rate) {
  std::lock_guard lock(m_impl->mutex);
  m_impl->options.bytes_per_sec_per_connection = rate;
}

std::vector<StorageRequest> StorageServer::requests() const {
  std::lock_guard lock(m_impl->mutex);
  return m_impl->log;
}

std::int64_t StorageServer::bytes_sent() const {
  std::lock_guard lock(m_impl->mutex);
  return m_impl->sent;
}

int StorageServer::authorization_seen() const {
  std::lock_guard lock(m_impl->mutex);
  return m_impl->auth_seen;
}

void StorageServer::clear_log() {
  std::lock_guard lock(m_impl->mutex);
  m_impl->log.clear();
  m_impl->sent = 0;
}

}  // namespace autopod::sandbox
