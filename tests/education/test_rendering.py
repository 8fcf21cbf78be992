"""The item renderer: a few marks become fixed tags; everything typed is escaped."""

from __future__ import annotations

from careloop.education import domain, rendering


def test_marks_become_fixed_tags() -> None:
    html = rendering.render("# Title\n\nFirst line\nsecond\n\n- a\n- **b**\n\n1. one\n2. two")
    assert "<h2>Title</h2>" in html
    assert "<p>First line<br>second</p>" in html
    assert "<ul><li>a</li><li><strong>b</strong></li></ul>" in html
    assert "<ol><li>one</li><li>two</li></ol>" in html


def test_html_and_script_are_shown_as_text() -> None:
    html = rendering.render('<script>alert(1)</script>\n<img src=x onerror="alert(2)">')
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=&quot;alert(2)&quot;&gt;" in html


def test_only_https_links_become_links() -> None:
    html = rendering.render(
        "[ok](https://who.int/x) [bad](javascript:alert(1)) [also](http://a.b) "
        '[quote](https://a.b/"onmouseover=alert(1))'
    )
    assert '<a href="https://who.int/x" rel="noopener noreferrer nofollow"' in html
    assert "javascript" not in html.split("[bad]")[0]
    assert 'href="javascript' not in html and 'href="http://' not in html
    assert "onmouseover=alert" not in html.replace("[quote](https://a.b/&quot;onmouseover", "")


def test_bold_inside_a_link_text_is_escaped_too() -> None:
    html = rendering.render("[**<b>x</b>**](https://a.b)")
    assert "<strong>&lt;b&gt;x&lt;/b&gt;</strong>" in html


def test_excerpt_is_plain() -> None:
    assert rendering.plain("# Title\n**bold** [w](https://a.b)", 100) == "Title bold w"


def test_video_checked_by_content() -> None:
    assert domain.video_type(b"\x00\x00\x00\x18ftypisom" + bytes(20)) == "video/mp4"
    assert domain.video_type(b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01B\x82\x84webm") == "video/webm"
    assert domain.video_type(b"<html><script>") is None
    assert domain.video_type(b"%PDF-1.4") is None


def test_byte_ranges() -> None:
    assert domain.byte_range("bytes=0-9", 100) == (0, 9)
    assert domain.byte_range("bytes=90-", 100) == (90, 99)
    assert domain.byte_range("bytes=-10", 100) == (90, 99)
    assert domain.byte_range("bytes=0-500", 100) == (0, 99)
    assert domain.byte_range("bytes=200-", 100) is None
    assert domain.byte_range("bytes=0-1,5-6", 100) is None


def test_stages_and_tags() -> None:
    assert domain.stage_matches("week_1", 0) and domain.stage_matches("week_1", 6)
    assert not domain.stage_matches("week_1", 7)
    assert domain.stage_matches("later", 400) and domain.stage_matches("any", 0)
    assert domain.parse_tags("I10, e11.9；38341003 x!") == (["I10", "E11.9"], ["38341003"], ["x!"])
    tags = domain.Tags("en", "week_2", ("E11",), ())
    assert domain.is_for(tags, domain.Audience("en", ["E11.9"], [], 8))
    assert not domain.is_for(tags, domain.Audience("zh-hans", ["E11.9"], [], 8))
    assert not domain.is_for(tags, domain.Audience("en", ["I10"], [], 8))
    assert not domain.is_for(tags, domain.Audience("en", ["E11"], [], 20))
