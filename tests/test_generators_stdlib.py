"""``yield_`` from callbacks the stdlib's C and Python code calls: parsers and visitors
become lazy event streams with no thread and no list.

The twin of each stream is the same callbacks appending to a list: the stream must
give the same events in the same order, one at a time (the parser is still inside
its call when the consumer gets each event), and stopping early must unwind it.
"""

from __future__ import annotations

import ast
import html.parser
import io
import re
import xml.sax
import xml.sax.handler
from collections.abc import Callable, Iterator
from typing import Any

import anywait
from anywait import yield_

HTML = "<html><body><p class='x'>Hello <b>world</b></p><!-- c --><br/></body></html>"
XML = "<root><item id='1'>one</item><item id='2'>two</item><empty/></root>"
SOURCE = "def f(a):\n    return [a + 1 for b in a]\n\nclass C:\n    x = f(2)\n"


class HtmlEvents(html.parser.HTMLParser):
    def __init__(self, emit: Callable[[Any], Any]) -> None:
        super().__init__()
        self.emit = emit

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.emit(("start", tag, attrs))

    def handle_endtag(self, tag: str) -> None:
        self.emit(("end", tag))

    def handle_data(self, data: str) -> None:
        self.emit(("data", data))

    def handle_comment(self, data: str) -> None:
        self.emit(("comment", data))


class SaxEvents(xml.sax.handler.ContentHandler):
    def __init__(self, emit: Callable[[Any], Any]) -> None:
        super().__init__()
        self.emit = emit

    def startElement(self, name: str, attrs: Any) -> None:
        self.emit(("start", name, dict(attrs)))

    def endElement(self, name: str) -> None:
        self.emit(("end", name))

    def characters(self, content: str) -> None:
        self.emit(("text", content))


class NodeNames(ast.NodeVisitor):
    def __init__(self, emit: Callable[[Any], Any]) -> None:
        self.emit = emit

    def generic_visit(self, node: ast.AST) -> None:
        self.emit(type(node).__name__)
        super().generic_visit(node)


def parse_html(emit: Callable[[Any], Any]) -> None:
    parser = HtmlEvents(emit)
    parser.feed(HTML)
    parser.close()


def parse_xml(emit: Callable[[Any], Any]) -> None:
    xml.sax.parseString(XML.encode(), SaxEvents(emit))


def visit_ast(emit: Callable[[Any], Any]) -> None:
    NodeNames(emit).visit(ast.parse(SOURCE))


def substitute(emit: Callable[[Any], Any]) -> str:
    # re.sub calls the replacement function from C; the consumer's answer replaces.
    return re.sub(r"\w+", lambda match: emit(match.group()) or match.group(), "ab cd ef")


def collected(producer: Callable[[Callable[[Any], Any]], Any]) -> list[Any]:
    events: list[Any] = []
    producer(events.append)
    return events


def streamed(producer: Callable[[Callable[[Any], Any]], Any]) -> Iterator[Any]:
    return anywait.generator(producer)(yield_)  # type: ignore[no-any-return]


def test_html_parser_events() -> None:
    assert list(streamed(parse_html)) == collected(parse_html)


def test_xml_sax_handler_events() -> None:
    assert list(streamed(parse_xml)) == collected(parse_xml)


def test_ast_node_visitor() -> None:
    assert list(streamed(visit_ast)) == collected(visit_ast)


def test_re_sub_callback_yields_and_takes_the_consumers_answer() -> None:
    gen = streamed(substitute)
    words = [next(gen)]
    try:
        while True:
            words.append(gen.send(words[-1].upper()))  # type: ignore[attr-defined]
    except StopIteration as stop:
        result = stop.value
    assert words == ["ab", "cd", "ef"]
    assert result == "AB CD EF"


def test_each_event_arrives_while_the_parser_is_still_inside_its_call() -> None:
    fed = io.StringIO()

    def parse(emit: Callable[[Any], Any]) -> None:
        parser = HtmlEvents(emit)
        for chunk in ("<p>a", "</p><p>b", "</p>"):
            fed.write(chunk)
            parser.feed(chunk)
        parser.close()

    gen = streamed(parse)
    assert next(gen) == ("start", "p", [])
    assert fed.getvalue() == "<p>a"  # the rest is not fed yet
    rest = list(gen)
    assert fed.getvalue() == "<p>a</p><p>b</p>"
    assert rest == collected(parse)[1:]


def test_stopping_early_unwinds_the_parser() -> None:
    unwound: list[str] = []

    def parse(emit: Callable[[Any], Any]) -> None:
        try:
            parse_xml(emit)
        finally:
            unwound.append("parser unwound")

    gen = streamed(parse)
    for event in gen:
        if event == ("end", "item"):
            break
    gen.close()  # type: ignore[attr-defined]
    assert unwound == ["parser unwound"]
