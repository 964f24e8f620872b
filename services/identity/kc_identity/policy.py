"""Password rules: the service password policy and the telephone password policy."""
from zxcvbn import zxcvbn

MIN_LENGTH = 10
MAX_LENGTH = 128
MIN_SCORE = 3  # zxcvbn 0..4; below 3 the password is common or easily guessed
PHONE_MIN_LENGTH = 6
PHONE_MAX_LENGTH = 64


def service_password_problems(password, *, customer_id=None, email=None):
    """German messages of everything wrong with a new service password (empty list = ok)."""
    problems = []
    if len(password) < MIN_LENGTH:
        problems.append(f"Das Passwort muss mindestens {MIN_LENGTH} Zeichen lang sein.")
    if len(password) > MAX_LENGTH:
        problems.append(f"Das Passwort darf höchstens {MAX_LENGTH} Zeichen lang sein.")
    lowered = password.casefold()
    personal = [str(customer_id)] if customer_id else []
    if email:
        personal += [email.casefold(), email.split("@")[0].casefold()]
    if any(p and len(p) >= 3 and p in lowered for p in personal):
        problems.append("Das Passwort darf weder Ihre Kundennummer noch Ihre E-Mail-Adresse enthalten.")
    if not problems:
        result = zxcvbn(password[:100], user_inputs=personal)
        if result["score"] < MIN_SCORE:
            problems.append("Dieses Passwort ist zu leicht zu erraten (häufig verwendet oder zu einfach). "
                            "Bitte wählen Sie ein anderes, z. B. mehrere zufällige Wörter.")
    return problems


def phone_password_problems(password, *, service_password_hash_check=None):
    problems = []
    if len(password) < PHONE_MIN_LENGTH:
        problems.append(f"Das Telefon-Passwort muss mindestens {PHONE_MIN_LENGTH} Zeichen lang sein.")
    if len(password) > PHONE_MAX_LENGTH:
        problems.append(f"Das Telefon-Passwort darf höchstens {PHONE_MAX_LENGTH} Zeichen lang sein.")
    if service_password_hash_check and service_password_hash_check(password):
        problems.append("Das Telefon-Passwort darf nicht Ihr Service-Passwort sein.")
    return problems
