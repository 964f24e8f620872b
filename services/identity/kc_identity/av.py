"""The data-processing agreement (Vereinbarung zur Auftragsverarbeitung, AV).

Versions of the text are part of the release (legal text changes with the
code that serves it): the last entry of ``VERSIONS`` is current. Signatures
record version, title and the SHA-256 of the text that was signed.
"""
import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class AvVersion:
    version: int
    valid_from: str  # YYYY-MM-DD
    title: str
    text: str

    @property
    def sha256(self):
        return hashlib.sha256(self.text.encode()).hexdigest()


_TEXT_V1 = """\
Vereinbarung zur Auftragsverarbeitung gemäß Art. 28 DS-GVO

1. Gegenstand und Dauer
Der Auftragnehmer (KundenCenter Hosting) verarbeitet personenbezogene Daten im Auftrag des Kunden \
(Verantwortlicher) ausschließlich zur Erbringung der gebuchten Hosting-, Domain- und Serverleistungen. \
Die Vereinbarung gilt für die Dauer der Verträge über diese Leistungen.

2. Art der Daten und Kreis der Betroffenen
Alle Daten, die der Kunde auf den Systemen des Auftragnehmers speichert oder durch sie verarbeiten \
lässt (z. B. Kunden-, Interessenten-, Beschäftigten- und Kommunikationsdaten).

3. Weisungen
Der Auftragnehmer verarbeitet die Daten nur auf dokumentierte Weisung des Kunden. Er informiert \
den Kunden unverzüglich, wenn er eine Weisung für rechtswidrig hält.

4. Technische und organisatorische Maßnahmen
Der Auftragnehmer trifft die Maßnahmen nach Art. 32 DS-GVO (Zutrittskontrolle zum Rechenzentrum, \
Zugriffsschutz, Verschlüsselung der Übertragung, Datensicherung, Verfügbarkeit) und hält sie aktuell.

5. Unterauftragsverhältnisse
Unterauftragnehmer werden nur nach vorheriger Information des Kunden eingesetzt; der Kunde kann \
aus wichtigem Grund widersprechen.

6. Rechte der Betroffenen, Meldepflichten
Der Auftragnehmer unterstützt den Kunden bei Anfragen Betroffener und meldet Verletzungen des \
Schutzes personenbezogener Daten unverzüglich.

7. Löschung und Rückgabe
Nach Ende der Leistungen löscht der Auftragnehmer die Daten, soweit keine gesetzliche Pflicht zur \
Aufbewahrung besteht.
"""

VERSIONS = [
    AvVersion(version=1, valid_from="2026-01-01",
              title="Vereinbarung zur Auftragsverarbeitung (AV), Version 1", text=_TEXT_V1),
]


def current():
    return VERSIONS[-1]


def by_version(version):
    return next((v for v in VERSIONS if v.version == version), None)
