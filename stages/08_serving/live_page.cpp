// live_page.cpp: the page GET / serves (live_page.html, embedded at configure time).
namespace llm::stage08 {
extern const char* const kLivePage;
const char* const kLivePage =
#include "live_page.inc"
    ;
}  // namespace llm::stage08
