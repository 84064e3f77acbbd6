// The intake rules, exactly as the server applies them (crates/protocol/src/intake.rs, text.rs
// and vin.rs), so the form can point at a problem before sending. Both sides are tested against
// tests/fixtures/intake/cases.json. Lengths count Unicode scalar values after trimming Unicode
// white space, as Rust's `str::trim` and `chars().count()` do (JS' own `trim` also strips U+FEFF).

import type { IntakeRequest } from './backend';

export const NAME_MAX = 100;
export const EMAIL_MAX = 254;
export const MAKE_MODEL_MAX = 50;
export const CONCERN_MIN = 10;
export const CONCERN_MAX = 2000;
export const YEAR_MIN = 1900;
export const MILEAGE_MAX = 2_000_000;
export const PHONE_DIGITS_MIN = 7;
export const PHONE_DIGITS_MAX = 15;

/** Problems keyed by field path (`name`, `vehicle.vin`, …), as the server's `fields`. */
export type FieldErrors = Record<string, string>;

export const FIELD_KEYS = [
  'name',
  'email',
  'phone',
  'vehicle.year',
  'vehicle.make',
  'vehicle.model',
  'vehicle.vin',
  'vehicle.mileage',
  'concern',
  'plan',
] as const;
export type FieldKey = (typeof FIELD_KEYS)[number];

const EDGE_SPACE = /^\p{White_Space}+|\p{White_Space}+$/gu;
const SPACE_OR_CONTROL = /[\p{White_Space}\p{Cc}]/u;

/**
 * Control characters a field may not hold once trimmed (crates/protocol/src/text.rs): one-line
 * fields none of U+0000–U+001F, multi-line fields (the concern) none but tab and line breaks.
 */
const C0_CONTROL = /[\u0000-\u001f]/;
const C0_BUT_LINE_BREAKS = /[\u0000-\u0008\u000b\u000c\u000e-\u001f]/;
export const CONTROL_CHARACTER_MESSAGE = 'Please remove the invisible control characters';

/** Whether `value` fits a one-line field (a name, a make): no C0 control character. */
export function isOneLine(value: string): boolean {
  return !C0_CONTROL.test(value);
}

/** Whether `value` fits a multi-line field (the concern): tab and line breaks only. */
export function isMultiLine(value: string): boolean {
  return !C0_BUT_LINE_BREAKS.test(value);
}

function refuseControls(
  field: string,
  value: string,
  multiLine: boolean,
  errors: FieldErrors,
): void {
  const fits = multiLine ? isMultiLine(value) : isOneLine(value);
  if (!fits && !errors[field]) errors[field] = CONTROL_CHARACTER_MESSAGE;
}

/** Rust's `str::trim`: Unicode White_Space at both ends. */
export function rustTrim(value: string): string {
  return value.replace(EDGE_SPACE, '');
}

/** Rust's `chars().count()`: Unicode scalar values. */
export function charCount(value: string): number {
  let n = 0;
  for (const _ of value) n++;
  return n;
}

function trimmedLength(
  field: string,
  raw: string,
  min: number,
  max: number,
  errors: FieldErrors,
): string {
  const value = rustTrim(raw);
  const len = charCount(value);
  if (len < min) {
    errors[field] = min <= 1 ? 'This field is required' : `Please write at least ${min} characters`;
  } else if (len > max) {
    errors[field] = `Please keep this under ${max + 1} characters`;
  }
  return value;
}

export function emailIsValid(email: string): boolean {
  const at = email.indexOf('@');
  if (at < 0) return false;
  const local = email.slice(0, at);
  const domain = email.slice(at + 1);
  return (
    local !== '' &&
    !domain.includes('@') &&
    domain.includes('.') &&
    !domain.startsWith('.') &&
    !domain.endsWith('.') &&
    !SPACE_OR_CONTROL.test(email)
  );
}

export function phoneIsValid(phone: string): boolean {
  let digits = 0;
  for (const c of phone) {
    if (c >= '0' && c <= '9') digits++;
    else if (!' +-().'.includes(c)) return false;
  }
  return digits >= PHONE_DIGITS_MIN && digits <= PHONE_DIGITS_MAX;
}

const WEIGHTS = [8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2];
const LETTER_VALUES: Record<string, number> = {
  A: 1, J: 1, B: 2, K: 2, S: 2, C: 3, L: 3, T: 3, D: 4, M: 4, U: 4,
  E: 5, N: 5, V: 5, F: 6, W: 6, G: 7, P: 7, X: 7, H: 8, Y: 8, R: 9, Z: 9,
};

export const VIN_ERRORS = {
  length: 'a VIN has 17 characters',
  character: 'a VIN uses digits and the letters A–Z except I, O and Q',
  checkDigit: "this VIN's check digit (9th character) does not match; please re-check it",
} as const;

/** The VIN problem (the server's message) or null when it is valid. Case and edge spaces are ignored. */
export function vinProblem(raw: string): string | null {
  // Rust: trim, then ASCII-only upper-casing.
  const vin = rustTrim(raw).replace(/[a-z]/g, (c) => c.toUpperCase());
  const chars = [...vin];
  if (chars.length !== 17) return VIN_ERRORS.length;
  let sum = 0;
  for (let i = 0; i < 17; i++) {
    const c = chars[i];
    const value = c >= '0' && c <= '9' ? c.charCodeAt(0) - 48 : LETTER_VALUES[c];
    if (value === undefined) return VIN_ERRORS.character;
    sum += value * WEIGHTS[i];
  }
  const remainder = sum % 11;
  const expected = remainder === 10 ? 'X' : String(remainder);
  return chars[8] === expected ? null : VIN_ERRORS.checkDigit;
}

/** A text field as the server reads it: missing (or not text) counts as empty. */
function text(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

/**
 * Checks an intake body and reports every problem at once, with the server's messages. Missing
 * text fields count as empty and a missing year as 0, as on the server.
 * `planIds`, when given, are the plans offered (`GET /api/plans`); the server refuses any other.
 */
export function validateIntake(
  body: IntakeRequest,
  currentYear: number,
  planIds?: readonly string[],
): FieldErrors {
  const errors: FieldErrors = {};
  const vehicle = body.vehicle ?? {};
  const name = trimmedLength('name', text(body.name), 1, NAME_MAX, errors);
  refuseControls('name', name, false, errors);
  const email = trimmedLength('email', text(body.email), 1, EMAIL_MAX, errors).toLowerCase();
  if (!errors.email && !emailIsValid(email)) {
    errors.email = 'Please enter an email address like name@example.com';
  }
  const phone = rustTrim(text(body.phone));
  if (phone !== '' && !phoneIsValid(phone)) {
    errors.phone = `A phone number has ${PHONE_DIGITS_MIN} to ${PHONE_DIGITS_MAX} digits`;
  }
  const yearMax = currentYear + 1;
  const year = vehicle.year ?? 0;
  if (!Number.isInteger(year) || year < YEAR_MIN || year > yearMax) {
    errors['vehicle.year'] = `The model year must be between ${YEAR_MIN} and ${yearMax}`;
  }
  const make = trimmedLength('vehicle.make', text(vehicle.make), 1, MAKE_MODEL_MAX, errors);
  refuseControls('vehicle.make', make, false, errors);
  const model = trimmedLength('vehicle.model', text(vehicle.model), 1, MAKE_MODEL_MAX, errors);
  refuseControls('vehicle.model', model, false, errors);
  const vin = rustTrim(text(vehicle.vin));
  if (vin !== '') {
    const problem = vinProblem(vin);
    if (problem) errors['vehicle.vin'] = problem;
  }
  const mileage = vehicle.mileage;
  if (mileage !== null && mileage !== undefined) {
    if (!Number.isInteger(mileage) || mileage < 0) {
      errors['vehicle.mileage'] = `Mileage must be a whole number from 0 to ${MILEAGE_MAX}`;
    } else if (mileage > MILEAGE_MAX) {
      errors['vehicle.mileage'] = `Mileage must be at most ${MILEAGE_MAX}`;
    }
  }
  const concern = trimmedLength('concern', text(body.concern), CONCERN_MIN, CONCERN_MAX, errors);
  refuseControls('concern', concern, true, errors);
  const plan = rustTrim(text(body.plan));
  if (plan === '') {
    errors.plan = 'Please choose a plan';
  } else if (planIds && !planIds.includes(plan)) {
    errors.plan = 'Please choose one of the plans offered';
  }
  return errors;
}

/** What the form holds: everything as typed, numbers included. */
export type IntakeForm = {
  name: string;
  email: string;
  phone: string;
  year: string;
  make: string;
  model: string;
  vin: string;
  mileage: string;
  concern: string;
  plan: string;
};

export function emptyForm(plan = ''): IntakeForm {
  return { name: '', email: '', phone: '', year: '', make: '', model: '', vin: '', mileage: '', concern: '', plan };
}

function wholeNumber(text: string): number | null {
  const t = rustTrim(text).replace(/[,_\s]/g, '');
  return /^\d+$/.test(t) ? Number(t) : null;
}

/**
 * Turns the form into a request body and checks it. Numbers that are not whole numbers are
 * field problems here, so the server never sees a body it cannot read.
 */
export function checkForm(
  form: IntakeForm,
  currentYear: number,
  planIds?: readonly string[],
): { body: IntakeRequest; errors: FieldErrors } {
  const year = wholeNumber(form.year);
  const mileageText = rustTrim(form.mileage);
  const mileage = mileageText === '' ? null : wholeNumber(mileageText);
  const body: IntakeRequest = {
    name: form.name,
    email: form.email,
    phone: rustTrim(form.phone) === '' ? null : form.phone,
    vehicle: {
      year: year ?? Number.NaN,
      make: form.make,
      model: form.model,
      vin: rustTrim(form.vin) === '' ? null : form.vin,
      mileage: mileage ?? (mileageText === '' ? null : Number.NaN),
    },
    concern: form.concern,
    plan: form.plan,
  };
  const errors = validateIntake(body, currentYear, planIds);
  return { body, errors };
}
