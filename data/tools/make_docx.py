"""Write the Word document of data/docs (hardware-returns.docx) with python-docx.

A maintenance script, not part of the product: python data/tools/make_docx.py
"""

from pathlib import Path

import docx

OUT = Path(__file__).parent.parent / "docs" / "hardware-returns.docx"


def main() -> None:
    doc = docx.Document()
    doc.core_properties.title = "Returning and swapping IT hardware"
    doc.core_properties.author = "Fennmoor Logistics Ltd"
    doc.add_heading("Returning and swapping IT hardware", level=1)
    doc.add_paragraph(
        "Laptops, docks, monitors and depot scanners belong to Fennmoor Logistics. When you "
        "change role, leave, or get a replacement, the old device goes back to the IT hardware "
        "room so that it can be wiped, repaired or reissued."
    )
    doc.add_heading("Booking a return", level=2)
    doc.add_paragraph(
        "Raise a 'Hardware return' request in the Service Portal at least two working days "
        "before you hand the device in. The request gives you a return number starting with "
        "HR- that you write on the box."
    )
    for step in (
        "Back up any local files to your OneDrive folder; the device is wiped on arrival.",
        "Sign out of Company Portal and remove personal items such as stickers and cases.",
        "Pack the charger, dock cable and any USB adapters that came with the device.",
        "Bring it to the hardware room (Harbour House, floor 1, room 1.14) or hand it to the "
        "depot team lead, who sends it on in the weekly internal post.",
    ):
        doc.add_paragraph(step, style="List Number")
    doc.add_heading("What to return and where", level=2)
    table = doc.add_table(rows=1, cols=3)
    header = table.rows[0].cells
    header[0].text, header[1].text, header[2].text = "Item", "Return to", "Deadline"
    for item, where, when in (
        ("Laptop and charger", "Hardware room 1.14", "Last working day"),
        ("Depot handheld scanner", "Depot team lead", "End of last shift"),
        ("Monitor and dock", "Stays at the desk", "Not returned"),
        ("Mobile phone and SIM", "Hardware room 1.14", "Last working day"),
    ):
        row = table.add_row().cells
        row[0].text, row[1].text, row[2].text = item, where, when
    doc.add_heading("Broken or damaged devices", level=2)
    doc.add_paragraph(
        "Do not try to repair a company device yourself. Describe the damage in the return "
        "request; accidental damage is not charged to you, but a device that is lost and not "
        "reported within 24 hours is handled under the lost or stolen devices procedure."
    )
    doc.save(OUT)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
