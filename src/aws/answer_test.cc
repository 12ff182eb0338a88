// Tests for the answer readers: malformed input is an error naming the operation,
// never a crash; namespaces and prefixes do not matter; numbers may be quoted.
#include "aws/answer.h"

#include <gtest/gtest.h>

namespace amibake::aws {
namespace {

using nlohmann::json;

TEST(XmlAnswer, AcceptsDefaultNamespace) {
  auto a = parse_xml_answer("ec2", "DeleteVolume",
                            "<DeleteVolumeResponse xmlns=\"http://ec2.amazonaws.com/doc/"
                            "2016-11-15/\"><return>true</return></DeleteVolumeResponse>");
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_STREQ(xml_child(a->root(), "return").child_value(), "true");
}

TEST(XmlAnswer, MatchesPrefixedElementsByLocalName) {
  auto a = parse_xml_answer("ec2", "DeleteVolume",
                            "<e:DeleteVolumeResponse xmlns:e=\"urn:x\"><e:return>true</e:return>"
                            "</e:DeleteVolumeResponse>");
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_STREQ(xml_child(a->root(), "return").child_value(), "true");
}

TEST(XmlAnswer, TruncatedXmlIsErrorNamingOperation) {
  auto a = parse_xml_answer("ec2", "DescribeImages", "<DescribeImagesResponse><imagesSet><item>");
  ASSERT_FALSE(a);
  EXPECT_NE(a.error().message.find("ec2 DescribeImages: malformed answer: XML parse error"),
            std::string::npos)
      << a.error().message;
  EXPECT_FALSE(a.error().hint.empty());
}

TEST(XmlAnswer, EmptyBodyIsError) {
  auto a = parse_xml_answer("ec2", "DescribeImages", "");
  ASSERT_FALSE(a);
  EXPECT_NE(a.error().message.find("empty body"), std::string::npos);
}

TEST(XmlAnswer, WrongRootElementIsError) {
  auto a = parse_xml_answer("ec2", "DescribeImages", "<html><body>proxy login</body></html>");
  ASSERT_FALSE(a);
  EXPECT_NE(a.error().message.find("expected <DescribeImagesResponse>, got <html>"),
            std::string::npos)
      << a.error().message;
}

TEST(XmlItems, ReturnsOnlyItemElementsOfTheSet) {
  auto a = parse_xml_answer(
      "ec2", "X", "<XResponse><set><item>1</item><other/><item>2</item></set></XResponse>");
  ASSERT_TRUE(a);
  auto items = xml_items(a->root(), "set");
  ASSERT_EQ(items.size(), 2u);
  EXPECT_STREQ(items[1].child_value(), "2");
  EXPECT_TRUE(xml_items(a->root(), "absent").empty());
}

TEST(XmlReader, AbsentFieldsReadAsEmptyWithoutError) {
  auto a = parse_xml_answer("ec2", "X", "<XResponse/>");
  ASSERT_TRUE(a);
  XmlReader rd("ec2", "X");
  EXPECT_EQ(rd.str(a->root(), "name"), "");
  EXPECT_FALSE(rd.opt_int(a->root(), "size").has_value());
  EXPECT_FALSE(rd.opt_bool(a->root(), "encrypted").has_value());
  EXPECT_TRUE(rd.status());
}

TEST(XmlReader, NonNumericIntegerIsRecordedAsFirstError) {
  auto a = parse_xml_answer("ec2", "X", "<XResponse><size>abc</size><ok>maybe</ok></XResponse>");
  ASSERT_TRUE(a);
  XmlReader rd("ec2", "X");
  rd.opt_int(a->root(), "size");
  rd.opt_bool(a->root(), "ok");
  Status s = rd.status();
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().message, "ec2 X: malformed answer: <size> holds 'abc', not an integer");
}

TEST(XmlReader, ReadsIntegersAndBooleans) {
  auto a = parse_xml_answer("ec2", "X", "<XResponse><n>-42</n><b>true</b></XResponse>");
  ASSERT_TRUE(a);
  XmlReader rd("ec2", "X");
  EXPECT_EQ(rd.integer(a->root(), "n"), -42);
  EXPECT_TRUE(rd.boolean(a->root(), "b"));
  EXPECT_TRUE(rd.status());
}

TEST(JsonAnswer, InvalidJsonIsErrorNotException) {
  auto j = parse_json_answer("ssm", "GetParameter", "{\"Parameter\": {\"Name\": ");
  ASSERT_FALSE(j);
  EXPECT_EQ(j.error().message, "ssm GetParameter: malformed answer: body is not valid JSON");
}

TEST(JsonAnswer, NonObjectIsError) {
  auto j = parse_json_answer("ssm", "GetParameter", "[1,2]");
  ASSERT_FALSE(j);
  EXPECT_NE(j.error().message.find("expected a JSON object, got array"), std::string::npos);
}

TEST(JsonAnswer, EmptyBodyIsEmptyObject) {
  auto j = parse_json_answer("ebs", "CompleteSnapshot", "");
  ASSERT_TRUE(j);
  EXPECT_TRUE(j->is_object());
  EXPECT_TRUE(j->empty());
}

TEST(JsonReader, AcceptsIntegerAsNumberOrString) {
  json j = json::parse(R"({"a": 17, "b": "18", "c": 19.0, "d": 18446744073709551615})");
  JsonReader rd("ebs", "ListSnapshotBlocks");
  EXPECT_EQ(rd.opt_int(j, "a"), 17);
  EXPECT_EQ(rd.opt_int(j, "b"), 18);
  EXPECT_EQ(rd.opt_int(j, "c"), 19);
  EXPECT_TRUE(rd.status());
  EXPECT_FALSE(rd.opt_int(j, "d").has_value());  // does not fit int64
  EXPECT_FALSE(rd.status());
}

TEST(JsonReader, RejectsFractionalAndGarbageIntegers) {
  json j = json::parse(R"({"a": 1.5, "b": "1x", "c": true})");
  for (const char* key : {"a", "b", "c"}) {
    JsonReader rd("ebs", "X");
    EXPECT_FALSE(rd.opt_int(j, key).has_value()) << key;
    EXPECT_FALSE(rd.status()) << key;
  }
}

TEST(JsonReader, WrongTypeForStringIsError) {
  json j = json::parse(R"({"Name": 5, "Null": null})");
  JsonReader rd("ssm", "GetParameter");
  EXPECT_EQ(rd.str(j, "Null"), "");
  EXPECT_TRUE(rd.status());
  EXPECT_EQ(rd.str(j, "Name"), "");
  Status s = rd.status();
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().message,
            "ssm GetParameter: malformed answer: \"Name\" is a number, expected a string");
}

TEST(JsonReader, ArrayAndObjectCheckTypes) {
  json j = json::parse(R"({"A": {}, "O": []})");
  JsonReader rd("ebs", "X");
  EXPECT_EQ(rd.array(j, "A"), nullptr);
  EXPECT_FALSE(rd.status());
  JsonReader rd2("ebs", "X");
  EXPECT_EQ(rd2.object(j, "O"), nullptr);
  EXPECT_FALSE(rd2.status());
  JsonReader rd3("ebs", "X");
  EXPECT_EQ(rd3.array(j, "missing"), nullptr);
  EXPECT_TRUE(rd3.status());
}

TEST(ParseInt64, RejectsPartialAndEmpty) {
  int64_t v = 0;
  EXPECT_TRUE(parse_int64("123", &v));
  EXPECT_EQ(v, 123);
  EXPECT_FALSE(parse_int64("", &v));
  EXPECT_FALSE(parse_int64("12a", &v));
  EXPECT_FALSE(parse_int64(" 1", &v));
  EXPECT_FALSE(parse_int64("99999999999999999999", &v));
}

}  // namespace
}  // namespace amibake::aws
