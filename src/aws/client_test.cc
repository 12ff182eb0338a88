// AwsClient: signing, endpoints, error parsing per protocol, hints, and the retry
// loop (fake transport, recorded sleeps: nothing really sleeps).
#include "aws/client.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "aws/sigv4.h"
#include "aws/test_support.h"

namespace amibake::aws {
namespace {

using testing::FakeTransport;
using testing::ScopedEnv;
using namespace std::chrono_literals;

const Credentials kCreds{"AKIDTEST", "Sekrit-secret-key-0001", "", std::nullopt, "test keys"};

struct Harness {
  std::shared_ptr<FakeTransport> transport = std::make_shared<FakeTransport>();
  std::vector<std::chrono::milliseconds> sleeps;
  std::unique_ptr<AwsClient> client;
  SystemTime now = std::chrono::system_clock::from_time_t(1700000000);  // 2023-11-14T22:13:20Z

  explicit Harness(RetrySettings retry = {}, Credentials creds = kCreds) {
    AwsClient::Options o;
    o.region = "eu-west-1";
    o.endpoint_override = "http://127.0.0.1:9";
    o.credentials = std::make_shared<StaticCredentialsProvider>(creds);
    o.transport = transport;
    o.retry = retry;
    if (!o.retry.max_send_rate) o.retry.max_send_rate = 0;  // no rate limiting unless asked
    o.sleeper = [this](std::chrono::milliseconds d) { sleeps.push_back(d); };
    o.clock = [this] { return now; };
    o.random = [] { return 1.0; };  // worst-case jitter: delays are the ceilings
    o.shared_retry_state = false;
    client = std::make_unique<AwsClient>(std::move(o));
  }
};

AwsRequest describe_images() {
  AwsRequest r;
  r.service = "ec2";
  r.operation = "DescribeImages";
  r.protocol = Protocol::kEc2;
  r.body = "Action=DescribeImages&Version=2016-11-15";
  return r;
}

const char* kEc2Throttle =
    "<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit "
    "exceeded.</Message></Error></Errors><RequestID>req-1</RequestID></Response>";

TEST(AwsClient, SignsRequestsForTheServiceAndRegion) {
  Harness h;
  h.transport->answer(200, "<ok/>");
  ASSERT_TRUE(h.client->send(describe_images()).has_value());
  ASSERT_EQ(h.transport->requests.size(), 1u);
  const HttpRequest& sent = h.transport->requests[0];
  EXPECT_EQ(sent.url, "http://127.0.0.1:9/");
  std::map<std::string, std::string> hd(sent.headers.begin(), sent.headers.end());
  EXPECT_EQ(hd["Host"], "127.0.0.1:9");
  EXPECT_EQ(hd["X-Amz-Date"], "20231114T221320Z");
  EXPECT_EQ(hd["Content-Type"], "application/x-www-form-urlencoded; charset=utf-8");
  EXPECT_EQ(hd["Authorization"].rfind(
                "AWS4-HMAC-SHA256 Credential=AKIDTEST/20231114/eu-west-1/ec2/aws4_request, "
                "SignedHeaders=content-type;host;x-amz-date, Signature=",
                0),
            0u)
      << hd["Authorization"];
}

// What a verifier (awsemu) does: recompute the signature from what was received.
TEST(AwsClient, SignatureVerifiesFromTheReceivedRequest) {
  Harness h;
  h.transport->answer(200);
  ASSERT_TRUE(h.client->send(describe_images()).has_value());
  const HttpRequest& sent = h.transport->requests[0];
  std::string authz;
  for (const auto& [k, v] : sent.headers)
    if (k == "Authorization") authz = v;
  sigv4::ParsedAuthorization p;
  ASSERT_TRUE(sigv4::parse_authorization(authz, &p));
  sigv4::Request rebuilt{"POST", "/", "", {}, sha256_hex(sent.body)};
  for (const auto& [k, v] : sent.headers) {
    std::string lk = k;
    for (char& c : lk) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (std::find(p.signed_headers.begin(), p.signed_headers.end(), lk) != p.signed_headers.end())
      rebuilt.headers.emplace_back(k, v);
  }
  std::string sts =
      sigv4::string_to_sign("20231114T221320Z", p.scope, sigv4::canonical_request(rebuilt));
  EXPECT_EQ(sigv4::signature(kCreds.secret_access_key, p.scope, sts), p.signature);
}

TEST(AwsClient, AddsSessionTokenHeader) {
  Credentials c = kCreds;
  c.session_token = "Sekrit-session-token-0001";
  Harness h({}, c);
  h.transport->answer(200);
  ASSERT_TRUE(h.client->send(describe_images()).has_value());
  std::map<std::string, std::string> hd(h.transport->requests[0].headers.begin(),
                                        h.transport->requests[0].headers.end());
  EXPECT_EQ(hd["X-Amz-Security-Token"], c.session_token);
}

TEST(AwsClient, AnonymousRequestsCarryNoAuthorization) {
  Harness h;
  h.transport->answer(200);
  AwsRequest r = describe_images();
  r.anonymous = true;
  ASSERT_TRUE(h.client->send(r).has_value());
  for (const auto& [k, v] : h.transport->requests[0].headers) EXPECT_NE(k, "Authorization");
}

TEST(AwsClient, Ec2ErrorBecomesErrorWithCodeMessageAndRequestId) {
  Harness h;
  h.transport->answer(400,
                      "<Response><Errors><Error><Code>InvalidAMIID.NotFound</Code><Message>The "
                      "image id '[ami-1]' does not exist</Message></Error></Errors><RequestID>"
                      "abc-123</RequestID></Response>");
  auto r = h.client->send(describe_images());
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().aws_code, "InvalidAMIID.NotFound");
  EXPECT_EQ(r.error().http_status, 400);
  EXPECT_EQ(r.error().request_id, "abc-123");
  EXPECT_EQ(r.error().message,
            "ec2 DescribeImages: InvalidAMIID.NotFound: The image id '[ami-1]' does not exist "
            "(HTTP 400, request id abc-123)");
  EXPECT_EQ(h.transport->requests.size(), 1u) << "a NotFound must not be retried";
}

TEST(AwsClient, PermissionErrorsNameTheIamActionAndAreNotRetried) {
  Harness h;
  h.transport->answer(
      403,
      "<Response><Errors><Error><Code>UnauthorizedOperation</Code><Message>You are "
      "not authorized</Message></Error></Errors><RequestID>r</RequestID></Response>");
  auto r = h.client->send(describe_images());
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().hint.find("grant ec2:DescribeImages"), std::string::npos) << r.error().hint;
  EXPECT_NE(r.error().hint.find("test keys"), std::string::npos) << "hint names the credentials";
  EXPECT_EQ(h.transport->requests.size(), 1u);
}

TEST(AwsClient, EbsAccessDeniedNamesTheEbsAction) {
  Harness h;
  h.transport->answer(403, R"({"message":"User is not authorized"})",
                      {{"x-amzn-ErrorType", "AccessDeniedException:http://internal.amazon.com/"},
                       {"x-amzn-RequestId", "rid-9"}});
  AwsRequest r;
  r.service = "ebs";
  r.operation = "ListSnapshotBlocks";
  r.protocol = Protocol::kRestJson;
  r.method = "GET";
  r.path = "/snapshots/snap-1/blocks";
  auto res = h.client->send(r);
  ASSERT_FALSE(res.has_value());
  EXPECT_EQ(res.error().aws_code, "AccessDeniedException");
  EXPECT_EQ(res.error().request_id, "rid-9");
  EXPECT_NE(res.error().hint.find("grant ebs:ListSnapshotBlocks"), std::string::npos);
}

TEST(AwsClient, BadCredentialsGetAHintAboutKeysAndClock) {
  Harness h;
  h.transport->answer(403,
                      "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidClientTokenId</Code>"
                      "<Message>The security token included in the request is invalid.</Message>"
                      "</Error><RequestId>q-1</RequestId></ErrorResponse>");
  AwsRequest r;
  r.service = "sts";
  r.operation = "GetCallerIdentity";
  r.protocol = Protocol::kQuery;
  auto res = h.client->send(r);
  ASSERT_FALSE(res.has_value());
  EXPECT_EQ(res.error().aws_code, "InvalidClientTokenId");
  EXPECT_EQ(res.error().request_id, "q-1");
  EXPECT_NE(res.error().hint.find("clock"), std::string::npos);
}

TEST(AwsClient, ExpiredTokenIsReportedWithCredentialsHint) {
  Harness h;
  h.transport->answer(400,
                      "<ErrorResponse><Error><Code>ExpiredToken</Code><Message>The security token "
                      "included in the request is expired</Message></Error></ErrorResponse>");
  AwsRequest r;
  r.service = "sts";
  r.operation = "GetCallerIdentity";
  r.protocol = Protocol::kQuery;
  auto res = h.client->send(r);
  ASSERT_FALSE(res.has_value());
  EXPECT_EQ(res.error().aws_code, "ExpiredToken");
  EXPECT_NE(res.error().hint.find("renew expired session credentials"), std::string::npos);
  EXPECT_EQ(h.transport->requests.size(), 2u) << "one retry with refreshed credentials";
}

// Answers a new key id each time it is asked after invalidate().
struct RotatingProvider : CredentialsProvider {
  int generation = 1;
  Result<Credentials> get() override {
    return Credentials{"ASIAGEN" + std::to_string(generation), "Sekrit-rot-0001",
                       "Sekrit-rot-token-01", std::nullopt, "rotating"};
  }
  void invalidate() override { ++generation; }
  std::string describe() const override { return "rotating"; }
};

TEST(AwsClient, ExpiredTokenRefreshesCredentialsAndRetriesOnce) {
  Harness h;
  auto rotating = std::make_shared<RotatingProvider>();
  AwsClient::Options o;
  o.region = "us-east-1";
  o.endpoint_override = "http://127.0.0.1:9";
  o.credentials = rotating;
  o.transport = h.transport;
  o.sleeper = [](std::chrono::milliseconds) {};
  o.shared_retry_state = false;
  AwsClient client(std::move(o));
  h.transport->answer(400,
                      "<ErrorResponse><Error><Code>ExpiredToken</Code><Message>expired"
                      "</Message></Error></ErrorResponse>");
  h.transport->answer(200);
  ASSERT_TRUE(client.send(describe_images()).has_value());
  ASSERT_EQ(h.transport->requests.size(), 2u);
  std::string authz;
  for (const auto& [k, v] : h.transport->requests[1].headers)
    if (k == "Authorization") authz = v;
  EXPECT_NE(authz.find("Credential=ASIAGEN2/"), std::string::npos) << authz;
}

TEST(ParseAwsError, JsonTypeLosesItsNamespacePrefix) {
  AwsResponse resp{400, {}, R"({"__type":"com.amazonaws.ssm#ParameterNotFound","message":"nope"})"};
  AwsErrorInfo e = parse_aws_error(Protocol::kJson, resp);
  EXPECT_TRUE(e.parsed);
  EXPECT_EQ(e.code, "ParameterNotFound");
  EXPECT_EQ(e.message, "nope");
}

TEST(ParseAwsError, JsonCapitalMessageIsAccepted) {
  AwsResponse resp{400, {}, R"({"__type":"ValidationException","Message":"bad"})"};
  EXPECT_EQ(parse_aws_error(Protocol::kJson, resp).message, "bad");
}

TEST(ParseAwsError, RestJsonFallsBackToBodyCode) {
  AwsResponse resp{400, {}, R"({"code":"ValidationException","message":"m"})"};
  EXPECT_EQ(parse_aws_error(Protocol::kRestJson, resp).code, "ValidationException");
}

TEST(ParseAwsError, MalformedAndTruncatedBodiesAreNotParsed) {
  for (const char* body :
       {"", "<Response><Errors><Error><Code>Thr", "{\"__type\": \"Thr", "not xml at all",
        "<html><body>502 Bad Gateway</body></html>", "\x01\x02\xff", "[1,2,3]", "<Response/>"}) {
    AwsResponse resp{502, {}, body};
    EXPECT_FALSE(parse_aws_error(Protocol::kEc2, resp).parsed) << body;
    EXPECT_FALSE(parse_aws_error(Protocol::kJson, resp).parsed) << body;
  }
}

TEST(AwsClient, TruncatedErrorBodyGivesAClearErrorWithTheStatus) {
  Harness h;
  h.transport->answer(400, "<Response><Errors><Error><Code>Invalid");
  auto r = h.client->send(describe_images());
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("ec2 DescribeImages: HTTP 400 with an unreadable error answer"),
            std::string::npos)
      << r.error().message;
  EXPECT_EQ(r.error().http_status, 400);
}

TEST(AwsClient, ThrottlingIsRetriedWithGrowingBackoff) {
  RetrySettings s;
  s.max_attempts = 3;
  Harness h(s);
  h.transport->answer(503, kEc2Throttle);
  h.transport->answer(503, kEc2Throttle);
  h.transport->answer(200, "<ok/>");
  auto r = h.client->send(describe_images());
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(h.transport->requests.size(), 3u);
  // random = 1.0: delays are the caps, throttle base 500 ms, doubling.
  EXPECT_EQ(h.sleeps, (std::vector<std::chrono::milliseconds>{500ms, 1000ms}));
}

TEST(AwsClient, GivesUpAfterMaxAttemptsAndSaysSo) {
  RetrySettings s;
  s.max_attempts = 4;
  Harness h(s);
  h.transport->answer(500,
                      "<Response><Errors><Error><Code>InternalError</Code><Message>x"
                      "</Message></Error></Errors></Response>");
  auto r = h.client->send(describe_images());
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(h.transport->requests.size(), 4u);
  EXPECT_NE(r.error().message.find("after 4 attempts"), std::string::npos) << r.error().message;
  EXPECT_EQ(h.sleeps, (std::vector<std::chrono::milliseconds>{100ms, 200ms, 400ms}));
}

TEST(AwsClient, BackoffIsCappedAtMaxBackoff) {
  RetrySettings s;
  s.max_attempts = 10;
  s.max_backoff = 2000ms;
  Harness h(s);
  h.transport->answer(503, kEc2Throttle);
  ASSERT_FALSE(h.client->send(describe_images()).has_value());
  for (auto d : h.sleeps) EXPECT_LE(d, 2000ms);
  EXPECT_EQ(h.sleeps.back(), 2000ms);
}

TEST(AwsClient, ServerErrorsWithUnreadableBodiesAreRetried) {
  Harness h;
  h.transport->answer(502, "<html>Bad Gateway</html>");
  h.transport->answer(200, "<ok/>");
  EXPECT_TRUE(h.client->send(describe_images()).has_value());
  EXPECT_EQ(h.transport->requests.size(), 2u);
}

TEST(AwsClient, ValidationErrorsAreNotRetried) {
  Harness h;
  h.transport->answer(400,
                      "<Response><Errors><Error><Code>InvalidParameterValue</Code><Message>"
                      "bad</Message></Error></Errors></Response>");
  EXPECT_FALSE(h.client->send(describe_images()).has_value());
  EXPECT_EQ(h.transport->requests.size(), 1u);
  EXPECT_TRUE(h.sleeps.empty());
}

TEST(AwsClient, TimeoutIsRetriedOnlyWhenIdempotent) {
  Harness h;
  h.transport->fail(TransportErrorKind::kTimeout);
  AwsRequest r = describe_images();
  r.idempotent = false;
  auto res = h.client->send(r);
  ASSERT_FALSE(res.has_value());
  EXPECT_EQ(h.transport->requests.size(), 1u);
  EXPECT_NE(res.error().message.find("ec2 DescribeImages: fake failure"), std::string::npos);

  Harness h2;
  h2.transport->fail(TransportErrorKind::kTimeout);
  h2.transport->answer(200);
  EXPECT_TRUE(h2.client->send(describe_images()).has_value());
  EXPECT_EQ(h2.transport->requests.size(), 2u);
}

TEST(AwsClient, ResetIsRetriedWhenIdempotent) {
  Harness h;
  h.transport->fail(TransportErrorKind::kReset);
  h.transport->answer(200);
  EXPECT_TRUE(h.client->send(describe_images()).has_value());
}

TEST(AwsClient, ConnectionRefusedIsRetriedEvenWhenNotIdempotent) {
  Harness h;
  h.transport->fail(TransportErrorKind::kConnect);
  h.transport->answer(200);
  AwsRequest r = describe_images();
  r.idempotent = false;
  EXPECT_TRUE(h.client->send(r).has_value());
}

TEST(AwsClient, PolicyRefusalIsNotRetried) {
  Harness h;
  h.transport->fail(TransportErrorKind::kPolicy, "refusing plain http");
  EXPECT_FALSE(h.client->send(describe_images()).has_value());
  EXPECT_EQ(h.transport->requests.size(), 1u);
}

TEST(AwsClient, RetryQuotaStopsRetriesWhenExhausted) {
  RetrySettings s;
  s.max_attempts = 3;
  Harness h(s);
  h.transport->answer(503, kEc2Throttle);
  // 500 tokens / 5 per retry = 100 retries, then no more.
  int sent_before = 0;
  for (int i = 0; i < 60; ++i) {
    ASSERT_FALSE(h.client->send(describe_images()).has_value());
  }
  sent_before = static_cast<int>(h.transport->requests.size());
  EXPECT_EQ(sent_before, 60 + 100);  // 50 calls with 2 retries, then 10 calls with none
  auto r = h.client->send(describe_images());
  EXPECT_NE(r.error().message.find("retry quota exhausted"), std::string::npos);
}

TEST(AwsClient, ClockSkewIsCorrectedFromTheDateHeader) {
  Harness h;
  // Our clock says 2023-11-14T22:13:20Z; the server says one hour later.
  h.transport->answer(403,
                      "<ErrorResponse><Error><Code>RequestTimeTooSkewed</Code><Message>skew"
                      "</Message></Error></ErrorResponse>",
                      {{"Date", "Tue, 14 Nov 2023 23:13:20 GMT"}});
  h.transport->answer(200);
  AwsRequest r;
  r.service = "sts";
  r.operation = "GetCallerIdentity";
  r.protocol = Protocol::kQuery;
  ASSERT_TRUE(h.client->send(r).has_value());
  ASSERT_EQ(h.transport->requests.size(), 2u);
  std::map<std::string, std::string> hd(h.transport->requests[1].headers.begin(),
                                        h.transport->requests[1].headers.end());
  EXPECT_EQ(hd["X-Amz-Date"], "20231114T231320Z");
  EXPECT_EQ(h.client->clock_skew(), std::chrono::seconds(3600));
  EXPECT_TRUE(h.sleeps.empty()) << "a skew correction is retried at once";
}

TEST(AwsClient, SignatureErrorWithoutSkewIsNotRetried) {
  Harness h;
  h.transport->answer(403,
                      "<ErrorResponse><Error><Code>SignatureDoesNotMatch</Code><Message>no"
                      "</Message></Error></ErrorResponse>",
                      {{"Date", "Tue, 14 Nov 2023 22:13:25 GMT"}});
  EXPECT_FALSE(h.client->send(describe_images()).has_value());
  EXPECT_EQ(h.transport->requests.size(), 1u);
}

TEST(AwsClient, EventualConsistencyNotFoundIsRetriedWithinTheWindow) {
  Harness h;
  const char* not_found =
      "<Response><Errors><Error><Code>InvalidSnapshot.NotFound</Code><Message>no</Message>"
      "</Error></Errors></Response>";
  for (int i = 0; i < 5; ++i) h.transport->answer(400, not_found);
  h.transport->answer(200, "<ok/>");
  AwsRequest r = describe_images();
  r.consistency_codes = {"InvalidSnapshot.NotFound"};
  ASSERT_TRUE(h.client->send(r).has_value());
  EXPECT_EQ(h.transport->requests.size(), 6u) << "beyond max_attempts (3)";
}

TEST(AwsClient, EventualConsistencyWindowIsBounded) {
  Harness h;
  h.transport->answer(400,
                      "<Response><Errors><Error><Code>InvalidSnapshot.NotFound</Code>"
                      "<Message>no</Message></Error></Errors></Response>");
  AwsRequest r = describe_images();
  r.consistency_codes = {"InvalidSnapshot.NotFound"};
  r.consistency_window = 5000ms;
  auto res = h.client->send(r);
  ASSERT_FALSE(res.has_value());
  std::chrono::milliseconds total{0};
  for (auto d : h.sleeps) total += d;
  EXPECT_EQ(total, 5000ms);
  EXPECT_EQ(res.error().aws_code, "InvalidSnapshot.NotFound");
  EXPECT_NE(res.error().message.find("waiting 5 s"), std::string::npos) << res.error().message;
}

TEST(AwsClient, NotFoundWithoutConsistencyCodesIsFinal) {
  Harness h;
  h.transport->answer(400,
                      "<Response><Errors><Error><Code>InvalidSnapshot.NotFound</Code>"
                      "<Message>no</Message></Error></Errors></Response>");
  EXPECT_FALSE(h.client->send(describe_images()).has_value());
  EXPECT_EQ(h.transport->requests.size(), 1u);
}

TEST(ParseAwsError, QueryErrorsWrapperFromEmulatorsIsAccepted) {
  AwsResponse resp{403,
                   {},
                   "<?xml version=\"1.0\"?><ErrorResponse><Errors><Error><Code>"
                   "SignatureDoesNotMatch</Code><Message>m</Message></Error></Errors>"
                   "<RequestId>r9</RequestId></ErrorResponse>"};
  AwsErrorInfo e = parse_aws_error(Protocol::kQuery, resp);
  EXPECT_EQ(e.code, "SignatureDoesNotMatch");
  EXPECT_EQ(e.request_id, "r9");
}

TEST(AwsClient, RateLimiterSpacesBurstsThroughTheSleeper) {
  RetrySettings s;
  s.max_send_rate = 5;  // burst 5, then 200 ms apart
  Harness h(s);
  h.transport->answer(200);
  for (int i = 0; i < 7; ++i) ASSERT_TRUE(h.client->send(describe_images()).has_value());
  ASSERT_EQ(h.sleeps.size(), 2u);
  for (auto d : h.sleeps) {
    EXPECT_GT(d, 100ms);
    EXPECT_LE(d, 400ms);
  }
}

TEST(AwsClient, RestJsonPathAndQueryAreSentAndSigned) {
  Harness h;
  h.transport->answer(200, "{}");
  AwsRequest r;
  r.service = "ebs";
  r.operation = "ListSnapshotBlocks";
  r.protocol = Protocol::kRestJson;
  r.method = "GET";
  r.path = "/snapshots/snap-1/blocks";
  r.query = "pageToken=a%2Bb&maxResults=100";
  ASSERT_TRUE(h.client->send(r).has_value());
  EXPECT_EQ(h.transport->requests[0].url,
            "http://127.0.0.1:9/snapshots/snap-1/blocks?pageToken=a%2Bb&maxResults=100");
}

TEST(AwsClient, UnsignedPayloadSendsTheContentShaHeader) {
  Harness h;
  h.transport->answer(201, "{}");
  AwsRequest r;
  r.service = "ebs";
  r.operation = "PutSnapshotBlock";
  r.protocol = Protocol::kRestJson;
  r.method = "PUT";
  r.path = "/snapshots/snap-1/blocks/0";
  r.body = std::string(512, 'x');
  r.unsigned_payload = true;
  ASSERT_TRUE(h.client->send(r).has_value());
  std::map<std::string, std::string> hd(h.transport->requests[0].headers.begin(),
                                        h.transport->requests[0].headers.end());
  EXPECT_EQ(hd["X-Amz-Content-Sha256"], "UNSIGNED-PAYLOAD");
}

TEST(AwsClient, DefaultEndpointsFollowTheRegion) {
  AwsClient::Options o;
  o.region = "eu-central-1";
  o.credentials = std::make_shared<StaticCredentialsProvider>(kCreds);
  AwsClient c(std::move(o));
  EXPECT_EQ(c.endpoint("ec2"), "https://ec2.eu-central-1.amazonaws.com");
  EXPECT_EQ(c.endpoint("sts"), "https://sts.eu-central-1.amazonaws.com");
  EXPECT_EQ(c.endpoint("ebs"), "https://ebs.eu-central-1.amazonaws.com");
}

TEST(AwsClient, ForEndpointSendsEveryServiceThere) {
  auto c = AwsClient::for_endpoint("http://127.0.0.1:5555", kCreds);
  EXPECT_EQ(c->endpoint("ssm"), "http://127.0.0.1:5555");
  EXPECT_EQ(c->region(), "us-east-1");
}

TEST(AwsClient, UnreachableEndpointFailsClearlyWithinTheTimeout) {
  ScopedEnv env;
  RetrySettings s;
  s.max_attempts = 2;
  AwsClient::Options o;
  o.region = "us-east-1";
  o.endpoint_override = "http://127.0.0.1:" + std::to_string(testing::closed_port());
  o.credentials = std::make_shared<StaticCredentialsProvider>(kCreds);
  o.retry = s;
  o.shared_retry_state = false;
  AwsClient c(std::move(o));
  auto start = std::chrono::steady_clock::now();
  auto r = c.send(describe_images());
  ASSERT_FALSE(r.has_value());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  EXPECT_NE(r.error().message.find("connection failed"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("after 2 attempts"), std::string::npos) << r.error().message;
  EXPECT_FALSE(r.error().hint.empty());
}

// A transport that holds each request for a while and records the peak concurrency.
struct SlowTransport : Transport {
  std::atomic<int> now{0}, peak{0};
  HttpResult send(const HttpRequest&) override {
    int n = ++now;
    int p = peak.load();
    while (n > p && !peak.compare_exchange_weak(p, n)) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    --now;
    HttpResult r;
    r.response.status = 200;
    return r;
  }
};

TEST(AwsClient, InFlightRequestsAreBounded) {
  auto slow = std::make_shared<SlowTransport>();
  AwsClient::Options o;
  o.region = "us-east-1";
  o.endpoint_override = "http://127.0.0.1:9";
  o.credentials = std::make_shared<StaticCredentialsProvider>(kCreds);
  o.transport = slow;
  o.shared_retry_state = false;
  o.retry.max_send_rate = 0;
  o.max_in_flight = 2;
  AwsClient client(std::move(o));
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 3; ++i) EXPECT_TRUE(client.send(describe_images()).has_value());
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(slow->peak, 2);
}

// Many threads through one client and the libcurl transport, each request checked by
// the server for a valid signature.
TEST(AwsClient, ConcurrentSendsAreSignedAndAnswered) {
  ScopedEnv env;
  testing::LocalServer server;
  server.keep_alive(true);
  std::atomic<int> good{0}, bad{0};
  server.http().Post("/", [&](const httplib::Request& req, httplib::Response& res) {
    sigv4::ParsedAuthorization p;
    if (!sigv4::parse_authorization(req.get_header_value("Authorization"), &p)) {
      ++bad;
      res.status = 403;
      return;
    }
    sigv4::Request rebuilt{"POST", "/", "", {}, sha256_hex(req.body)};
    for (const auto& h : p.signed_headers)
      rebuilt.headers.emplace_back(h, req.get_header_value(h.c_str()));
    std::string sts = sigv4::string_to_sign(req.get_header_value("X-Amz-Date"), p.scope,
                                            sigv4::canonical_request(rebuilt));
    if (sigv4::signature(kCreds.secret_access_key, p.scope, sts) != p.signature) {
      ++bad;
      res.status = 403;
      res.set_content(
          "<Response><Errors><Error><Code>SignatureDoesNotMatch</Code><Message>x"
          "</Message></Error></Errors></Response>",
          "text/xml");
      return;
    }
    ++good;
    res.set_content("<ok/>", "text/xml");
  });
  server.start();
  auto client = AwsClient::for_endpoint(server.url(), kCreds);
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  auto start = std::chrono::steady_clock::now();
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 25; ++i) ok += client->send(describe_images()).has_value();
    });
  }
  for (auto& t : threads) t.join();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                  start);
  EXPECT_EQ(ok, 100);
  EXPECT_EQ(good, 100);
  EXPECT_EQ(bad, 0);
  RecordProperty("elapsed_ms", static_cast<int>(ms.count()));
}

}  // namespace
}  // namespace amibake::aws
