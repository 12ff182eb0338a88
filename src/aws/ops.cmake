# AWS service operations (issue 2): EC2/Query encoding, EC2, SSM, EBS direct, waiters.
# Included from src/aws/CMakeLists.txt after amibake_aws is defined.

target_sources(amibake_aws PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/answer.cc
  ${CMAKE_CURRENT_LIST_DIR}/query.cc
  ${CMAKE_CURRENT_LIST_DIR}/ec2.cc
  ${CMAKE_CURRENT_LIST_DIR}/ec2_images.cc
  ${CMAKE_CURRENT_LIST_DIR}/ssm.cc
  ${CMAKE_CURRENT_LIST_DIR}/ebs.cc
  ${CMAKE_CURRENT_LIST_DIR}/waiter.cc
)

# Unit tests: encoders against exact bodies, parsers against fixture answers, the
# waiter with a fake clock, and calls through AwsClient with a recording transport.
add_executable(aws_ops_test
  ${CMAKE_CURRENT_LIST_DIR}/answer_test.cc
  ${CMAKE_CURRENT_LIST_DIR}/query_test.cc
  ${CMAKE_CURRENT_LIST_DIR}/ec2_test.cc
  ${CMAKE_CURRENT_LIST_DIR}/ssm_test.cc
  ${CMAKE_CURRENT_LIST_DIR}/ebs_test.cc
  ${CMAKE_CURRENT_LIST_DIR}/waiter_test.cc
)
target_link_libraries(aws_ops_test amibake_aws GTest::gtest_main)
gtest_discover_tests(aws_ops_test DISCOVERY_TIMEOUT 60)

# Integration against moto (skips with a reason when moto is not installed).
add_executable(aws_moto_test ${CMAKE_CURRENT_LIST_DIR}/moto_test.cc)
target_link_libraries(aws_moto_test amibake_aws GTest::gtest_main)
gtest_discover_tests(aws_moto_test DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 300 LABELS moto)

# Answer-parser fuzzing. The fuzz entry points (LLVMFuzzerTestOneInput) are compiled
# twice: as libFuzzer targets when AMIBAKE_FUZZ is ON with clang, and always into a
# plain replay binary that runs them over the seed corpus and deterministic
# truncations/mutations of it, so the default build exercises the same code.
# A short fixed-time run (CI), keeping the checked-in seeds read-only by giving a
# scratch directory first (libFuzzer writes new inputs into the first directory):
#   aws_fuzz_xml_answers -max_total_time=60 "$(mktemp -d)" src/aws/fuzz/corpus/xml_answers
set(AMIBAKE_AWS_FUZZ_DIR ${CMAKE_CURRENT_LIST_DIR}/fuzz)
set(AMIBAKE_AWS_FUZZ_ENGINE OFF)
if(AMIBAKE_FUZZ AND CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  set(AMIBAKE_AWS_FUZZ_ENGINE ON)
  # The parsers live in amibake_aws, so the library itself must carry the coverage
  # instrumentation libFuzzer steers by (fuzzer-no-link) and ASan; whatever links it
  # in such a build gets the ASan runtime through the INTERFACE link option. Fuzz
  # builds are separate build trees (cmake -DAMIBAKE_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++).
  target_compile_options(amibake_aws PRIVATE -fsanitize=fuzzer-no-link,address)
  target_link_options(amibake_aws INTERFACE -fsanitize=address)
elseif(AMIBAKE_FUZZ)
  message(WARNING "AMIBAKE_FUZZ needs clang (libFuzzer); building only the replay tests")
endif()
foreach(target xml_answers json_answers)
  add_executable(aws_fuzz_replay_${target}
    ${AMIBAKE_AWS_FUZZ_DIR}/${target}_fuzz.cc ${AMIBAKE_AWS_FUZZ_DIR}/replay_main.cc)
  target_link_libraries(aws_fuzz_replay_${target} amibake_aws)
  add_test(NAME aws_fuzz_replay_${target}
           COMMAND aws_fuzz_replay_${target} ${AMIBAKE_AWS_FUZZ_DIR}/corpus/${target})
  if(AMIBAKE_AWS_FUZZ_ENGINE)
    add_executable(aws_fuzz_${target} ${AMIBAKE_AWS_FUZZ_DIR}/${target}_fuzz.cc)
    target_compile_options(aws_fuzz_${target} PRIVATE -fsanitize=fuzzer,address)
    target_link_options(aws_fuzz_${target} PRIVATE -fsanitize=fuzzer,address)
    target_link_libraries(aws_fuzz_${target} amibake_aws)
  endif()
endforeach()

# Model-driven operations (model.h): botocore's descriptions of the operations the
# publish steps use, embedded with .incbin (src/aws/models, written by scripts/aws-models).
enable_language(ASM)
set(AMIBAKE_MODELS_S ${CMAKE_CURRENT_BINARY_DIR}/aws_models.S)
set(models_asm "    .section .rodata\n")
set(model_files)
foreach(svc ec2 ssm batch kms)
  set(f ${CMAKE_CURRENT_LIST_DIR}/models/${svc}.json)
  list(APPEND model_files ${f})
  string(APPEND models_asm
    "    .global amibake_model_${svc}_start\namibake_model_${svc}_start:\n"
    "    .incbin \"${f}\"\n"
    "    .global amibake_model_${svc}_end\namibake_model_${svc}_end:\n")
endforeach()
string(APPEND models_asm "    .section .note.GNU-stack,\"\",@progbits\n")
file(WRITE ${AMIBAKE_MODELS_S} "${models_asm}")
set_source_files_properties(${AMIBAKE_MODELS_S} PROPERTIES OBJECT_DEPENDS "${model_files}")
target_sources(amibake_aws PRIVATE ${CMAKE_CURRENT_LIST_DIR}/model.cc ${AMIBAKE_MODELS_S})
target_sources(aws_ops_test PRIVATE ${CMAKE_CURRENT_LIST_DIR}/model_test.cc)
