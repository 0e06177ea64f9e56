#include "vmm/qmp.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <future>
#include <string>
#include <thread>

namespace vmm {
namespace {

using json = nlohmann::json;
using std::chrono::milliseconds;

constexpr const char* kGreeting =
    R"({"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": ""}, "capabilities": ["oob"]}})";

// The QEMU end of a QMP connection, speaking the protocol line by line from
// a script that runs on its own thread.
class FakeQemu {
 public:
  explicit FakeQemu(int fd) : fd_(fd) {}
  ~FakeQemu() { Close(); }

  void Send(const std::string& line) {
    std::string l = line + "\r\n";  // QEMU ends its lines with CRLF
    ASSERT_EQ(::send(fd_, l.data(), l.size(), MSG_NOSIGNAL), static_cast<ssize_t>(l.size()));
  }
  // The next request from the client; null at EOF.
  json Read() {
    for (;;) {
      size_t eol = buf_.find('\n');
      if (eol != std::string::npos) {
        json j = json::parse(buf_.substr(0, eol));
        buf_.erase(0, eol + 1);
        return j;
      }
      char b[4096];
      ssize_t n = ::recv(fd_, b, sizeof b, 0);
      if (n <= 0) return nullptr;
      buf_.append(b, static_cast<size_t>(n));
    }
  }
  void Reply(const json& request, const json& ret) {
    if (!request.is_object()) return;  // the client went away
    Send(json{{"return", ret}, {"id", request["id"]}}.dump());
  }
  // Greeting and capabilities negotiation, as QEMU does them.
  void Handshake() {
    Send(kGreeting);
    json req = Read();
    ASSERT_EQ(req["execute"], "qmp_capabilities");
    Reply(req, json::object());
  }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
  std::string buf_;
};

// A client attached to one end of a socketpair, a FakeQemu running `script`
// on the other.
class QmpTest : public ::testing::Test {
 protected:
  std::unique_ptr<QmpClient> Start(std::function<void(FakeQemu&)> script,
                                   milliseconds timeout = milliseconds(2000)) {
    int sv[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    server_ = std::thread([fd = sv[1], script = std::move(script)] {
      FakeQemu q(fd);
      script(q);
    });
    auto c = QmpClient::Attach(sv[0], timeout, "test.sock");
    if (!c.ok()) {
      error_ = c.error().message;
      return nullptr;
    }
    return std::move(c).value();
  }
  void TearDown() override {
    if (server_.joinable()) server_.join();
  }
  std::thread server_;
  std::string error_;
};

TEST_F(QmpTest, HandshakeThenQueryStatus) {
  auto c = Start([](FakeQemu& q) {
    q.Handshake();
    json req = q.Read();
    EXPECT_EQ(req["execute"], "query-status");
    EXPECT_FALSE(req.contains("arguments"));
    q.Reply(req, {{"status", "running"}, {"singlestep", false}, {"running", true}});
  });
  ASSERT_TRUE(c) << error_;
  EXPECT_EQ(c->greeting()["version"]["qemu"]["major"], 7);
  auto st = c->QueryStatus();
  ASSERT_TRUE(st.ok()) << st.error().message;
  EXPECT_EQ(*st, "running");
}

TEST_F(QmpTest, EventBeforeTheReplyIsKeptAndSkipped) {
  auto c = Start([](FakeQemu& q) {
    q.Handshake();
    json req = q.Read();
    EXPECT_EQ(req["execute"], "quit");
    // What QEMU 7.2 really sends for quit: the event first, then the reply.
    q.Send(R"({"timestamp": {"seconds": 1, "microseconds": 2}, "event": "SHUTDOWN", "data": {"guest": false, "reason": "host-qmp-quit"}})");
    q.Reply(req, json::object());
  });
  ASSERT_TRUE(c) << error_;
  EXPECT_TRUE(c->Quit().ok());
  ASSERT_EQ(c->events().size(), 1u);
  EXPECT_EQ(c->events()[0]["event"], "SHUTDOWN");
  EXPECT_EQ(c->TakeEvents().size(), 1u);
  EXPECT_TRUE(c->events().empty());
}

TEST_F(QmpTest, QuitSucceedsWhenQemuClosesBeforeReplying) {
  auto c = Start([](FakeQemu& q) {
    q.Handshake();
    q.Read();
    q.Close();
  });
  ASSERT_TRUE(c) << error_;
  EXPECT_TRUE(c->Quit().ok());
}

TEST_F(QmpTest, ErrorReplyBecomesAnErrorWithQemusWords) {
  auto c = Start([](FakeQemu& q) {
    q.Handshake();
    json req = q.Read();
    q.Send(json{{"error", {{"class", "DeviceNotActive"}, {"desc", "No balloon device has been activated"}}},
                {"id", req["id"]}}.dump());
  });
  ASSERT_TRUE(c) << error_;
  auto r = c->QueryBalloon();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "qemu refused query-balloon: No balloon device has been activated");
}

TEST_F(QmpTest, ArgumentsAreSentAndBalloonParsed) {
  auto c = Start([](FakeQemu& q) {
    q.Handshake();
    json req = q.Read();
    EXPECT_EQ(req["execute"], "balloon");
    EXPECT_EQ(req["arguments"]["value"], 268435456);
    q.Reply(req, json::object());
    req = q.Read();
    q.Reply(req, {{"actual", 268435456}});
  });
  ASSERT_TRUE(c) << error_;
  EXPECT_TRUE(c->SetBalloon(268435456).ok());
  auto r = c->QueryBalloon();
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(*r, 268435456);
}

TEST_F(QmpTest, TimeoutThenALateReplyIsSkipped) {
  std::promise<void> client_gave_up;
  auto gave_up = client_gave_up.get_future();
  auto c = Start([&gave_up](FakeQemu& q) {
    q.Handshake();
    json slow = q.Read();  // system_reset: answered only after the client gave up
    gave_up.wait();
    q.Reply(slow, json::object());
    json next = q.Read();
    EXPECT_EQ(next["execute"], "query-status");
    q.Reply(next, {{"status", "paused"}, {"running", false}});
  });
  ASSERT_TRUE(c) << error_;
  auto st = c->SystemReset(milliseconds(30));
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().message, "test.sock did not send the reply to system_reset in time");
  client_gave_up.set_value();
  auto s = c->QueryStatus();
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(*s, "paused");
}

TEST_F(QmpTest, SilentPeerTimesOutInTheHandshake) {
  std::promise<void> done;
  auto f = done.get_future();
  auto c = Start([&f](FakeQemu&) { f.wait(); }, milliseconds(30));
  EXPECT_FALSE(c);
  EXPECT_EQ(error_, "test.sock did not send the QMP greeting in time");
  done.set_value();
}

TEST_F(QmpTest, NotQmpIsRefused) {
  auto c = Start([](FakeQemu& q) { q.Send(R"({"hello": 1})"); });
  EXPECT_FALSE(c);
  EXPECT_EQ(error_, R"(test.sock is not a QMP socket: it greeted with {"hello":1})");
}

TEST_F(QmpTest, MalformedAndOversizedMessagesAreErrors) {
  auto c = Start([](FakeQemu& q) {
    q.Handshake();
    q.Read();
    q.Send("{not json");
    q.Read();
    q.Send(std::string(QmpClient::kMaxMessageBytes + 10, ' '));
  });
  ASSERT_TRUE(c) << error_;
  auto r = c->Execute("query-status");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "test.sock sent malformed JSON: {not json\r");
  r = c->Execute("query-status");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("over 1048576 bytes"), std::string::npos) << r.error().message;
}

TEST(QmpConnect, MissingSocketFailsAfterTheTimeout) {
  auto c = QmpClient::Connect("/nonexistent/qmp.sock", milliseconds(30));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().message,
            "cannot connect to qmp socket /nonexistent/qmp.sock: No such file or directory");
}

TEST(QmpConnect, ConnectsToAUnixSocketPath) {
  std::string path = ::testing::TempDir() + "/qmp_test_" + std::to_string(::getpid()) + ".sock";
  ::unlink(path.c_str());
  int lfd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  ASSERT_EQ(::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(lfd, 1), 0);
  std::thread server([lfd] {
    FakeQemu q(::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC));
    q.Handshake();
    json req = q.Read();
    q.Reply(req, {{"status", "shutdown"}, {"running", false}});
  });
  auto c = QmpClient::Connect(path, milliseconds(2000));
  ASSERT_TRUE(c.ok()) << c.error().message;
  auto s = (*c)->QueryStatus();
  server.join();
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(*s, "shutdown");
  ::close(lfd);
  ::unlink(path.c_str());
}

}  // namespace
}  // namespace vmm
