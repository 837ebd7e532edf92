//! Arbitrary bytes through parse, validate and diagnostics: none of them may panic or hang, and a
//! valid module must print to text that parses back to the same module.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    match zkc_lang::check(source) {
        Ok(parsed) => {
            let printed = zkc_lang::print(&parsed.module);
            let again = zkc_lang::parse(&printed).expect("printed text parses");
            assert_eq!(again.module, parsed.module, "print/parse round trip");
            assert_eq!(zkc_lang::print(&again.module), printed, "printing is idempotent");
        }
        Err((errors, spans)) => {
            let _ = zkc_lang::diagnostics::render("fuzz.zkir", source, &errors, spans.as_ref());
        }
    }
});
