#!/usr/bin/env bash
# Re-make the README's pictures from the demo practice, as a manager and the owner see them:
# the workbook printed by LibreOffice (headless) and the digest in headless Chromium at phone
# width. Needs soffice, pdftoppm (poppler-utils) and chromium; run from the repository root
# after `make demo` has made .venv.
set -euo pipefail
cd "$(dirname "$0")/../.."
py=.venv/bin/python
# A fixed folder, so the paths the digest shows are the same on every machine.
work=/tmp/sheets-bridge-pictures
rm -rf "$work" && mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
.venv/bin/sheets-bridge demo --dir "$work/demo-practice" --now 2026-11-27T10:00 >/dev/null

# The Dashboard: its two printed pages, cropped and stacked.
cp "$work/demo-practice/referrals.xlsx" "$work/wb.xlsx"
(cd "$work" && soffice --headless --convert-to pdf wb.xlsx >/dev/null 2>&1)
first=$(for p in $(seq 1 "$(pdfinfo "$work/wb.pdf" | awk '/Pages/{print $2}')"); do
    if pdftotext -f "$p" -l "$p" "$work/wb.pdf" - | grep -q "referrals dashboard"; then echo "$p"; fi
done | sed -n 1p)
pdftoppm -png -r 80 -f "$first" -l $((first + 1)) "$work/wb.pdf" "$work/dash"
# A few Referrals rows with the bridge columns (some staff columns hidden for the picture).
$py - "$work" <<'PY'
import sys
from openpyxl import load_workbook
from openpyxl.utils import get_column_letter
work = sys.argv[1]
wb = load_workbook(f"{work}/demo-practice/referrals.xlsx")
for name in wb.sheetnames:
    if name != "Referrals":
        del wb[name]
ws = wb["Referrals"]
keep = {"Received", "Patient First Name", "How Heard", "Visit", "Referral ID", "Source Tag",
        "Stage", "Follow-up Due", "Attention", "Bridge Updated"}
for cell in ws[1]:
    if cell.value not in keep:
        ws.column_dimensions[get_column_letter(cell.column)].hidden = True
for r in range(2, 19):
    ws.row_dimensions[r].hidden = True
ws.print_area = f"A1:{get_column_letter(ws.max_column)}27"
ws.page_setup.orientation = "landscape"
ws.sheet_properties.pageSetUpPr.fitToPage = True
ws.page_setup.fitToWidth, ws.page_setup.fitToHeight = 1, 0
wb.save(f"{work}/rows.xlsx")
PY
(cd "$work" && soffice --headless --convert-to pdf rows.xlsx >/dev/null 2>&1)
pdftoppm -png -r 110 -f 1 -l 1 "$work/rows.pdf" "$work/rows"
# The digest at phone width.
chromium --headless --no-sandbox --disable-gpu --disable-background-networking \
    --disable-component-update --disable-sync --no-first-run --hide-scrollbars \
    --user-data-dir="$work/chromium" --force-device-scale-factor=1 \
    --screenshot="$work/digest.png" --window-size=390,3400 \
    "$work/demo-practice/digest-preview.html" >/dev/null 2>&1
$py - "$work" <<'PY'
import glob, sys
from PIL import Image, ImageChops, ImageOps
work = sys.argv[1]

def crop(path, pad=12, bg=(255, 255, 255)):
    im = Image.open(path).convert("RGB")
    x0, y0, x1, y1 = ImageChops.difference(im, Image.new("RGB", im.size, bg)).getbbox()
    return im.crop((max(0, x0 - pad), max(0, y0 - pad), min(im.width, x1 + pad), min(im.height, y1 + pad)))

pages = [crop(p) for p in sorted(glob.glob(f"{work}/dash-*.png"))]
out = Image.new("RGB", (max(p.width for p in pages), sum(p.height + 10 for p in pages)), "white")
y = 0
for p in pages:
    out.paste(p, (0, y)); y += p.height + 10
ImageOps.expand(out, border=1, fill=(200, 200, 200)).save("docs/images/dashboard.png", optimize=True)
rows = crop(sorted(glob.glob(f"{work}/rows-*.png"))[0], pad=10)
ImageOps.expand(rows, border=1, fill=(200, 200, 200)).save("docs/images/referrals-rows.png", optimize=True)
im = Image.open(f"{work}/digest.png").convert("RGB")
bg = im.getpixel((5, im.height - 5))
box = ImageChops.difference(im, Image.new("RGB", im.size, bg)).getbbox()
im.crop((0, 0, im.width, min(im.height, box[3] + 12))).save("docs/images/digest.png", optimize=True)
PY
echo "docs/images/dashboard.png, referrals-rows.png and digest.png re-made"
