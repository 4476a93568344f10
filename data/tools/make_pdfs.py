"""Render the PDF documents of data/docs from their text sources in data/tools/pdf-sources.

A maintenance script, not part of the product. Needs fpdf2 (pip install fpdf2):
    python data/tools/make_pdfs.py
"""

from pathlib import Path

from fpdf import FPDF

HERE = Path(__file__).parent
OUT = HERE.parent / "docs"


def render(source: Path) -> Path:
    lines = source.read_text(encoding="utf-8").splitlines()
    title = lines[0].lstrip("# ").strip()
    pdf = FPDF(format="A4")
    pdf.set_title(title)
    pdf.set_author("Fennmoor Logistics Ltd")
    pdf.set_auto_page_break(auto=True, margin=20)
    pdf.set_margins(22, 20, 22)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.multi_cell(0, 8, title, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    for line in lines[1:]:
        if line.startswith("## "):
            pdf.ln(3)
            pdf.set_font("Helvetica", "B", 12)
            pdf.multi_cell(0, 7, line[3:], new_x="LMARGIN", new_y="NEXT")
        elif line.startswith("- "):
            pdf.set_font("Helvetica", "", 10.5)
            pdf.multi_cell(0, 5.5, "  -  " + line[2:], new_x="LMARGIN", new_y="NEXT")
        elif line.strip():
            pdf.set_font("Helvetica", "", 10.5)
            pdf.multi_cell(0, 5.5, line, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(1.5)
    out = OUT / (source.stem + ".pdf")
    pdf.output(str(out))
    return out


if __name__ == "__main__":
    for src in sorted((HERE / "pdf-sources").glob("*.txt")):
        print("wrote", render(src))
