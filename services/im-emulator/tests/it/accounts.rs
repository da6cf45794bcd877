//! Accounts, profiles and friends: import APIs and their read counterparts, with their limits and error codes.

use crate::common::{Im, assert_code, config};
use imbridge_im_emulator::EmulatorConfig;
use serde_json::{Value, json};

#[tokio::test]
async fn account_import_check_and_limits() {
    let im = Im::start(config()).await;
    im.ok("im_open_login_svc/account_import", json!({"UserID": "ann", "Nick": "Ann", "FaceUrl": "http://f/a.png"}))
        .await;
    // Idempotent.
    im.ok("im_open_login_svc/account_import", json!({"UserID": "ann"})).await;
    // No id at all, an over-long id, an over-long nick (the legacy `Identifier` name: client_compat.rs).
    assert_code(&im.call("im_open_login_svc/account_import", json!({"Nick": "x"})).await, 70402);
    assert_code(&im.call("im_open_login_svc/account_import", json!({"UserID": "x".repeat(33)})).await, 70402);
    assert_code(
        &im.call("im_open_login_svc/account_import", json!({"UserID": "y", "Nick": "n".repeat(501)})).await,
        40601,
    );

    // Both multiaccount shapes; invalid ids are reported, valid ones imported.
    let v = im
        .ok(
            "im_open_login_svc/multiaccount_import",
            json!({"Accounts": ["bob", "", "z".repeat(40)], "AccountList": [{"UserID": "cy", "Nick": "Cy"}]}),
        )
        .await;
    assert_eq!(v["FailAccounts"], json!(["", "z".repeat(40)]));
    let many: Vec<String> = (0..101).map(|i| format!("u{i}")).collect();
    assert_code(&im.call("im_open_login_svc/multiaccount_import", json!({"Accounts": many})).await, 70402);

    let v = im
        .ok(
            "im_open_login_svc/account_check",
            json!({"CheckItem": [{"UserID": "ann"}, {"UserID": "nobody"}, {"UserID": "administrator"}]}),
        )
        .await;
    let status: Vec<&str> =
        v["ResultItem"].as_array().expect("items").iter().map(|i| i["AccountStatus"].as_str().expect("s")).collect();
    assert_eq!(status, ["Imported", "NotImported", "Imported"]);
    assert_eq!(v["ResultItem"][1]["ResultCode"], 0, "a missing account is a successful item");
    let too_many: Vec<Value> = (0..101).map(|i| json!({"UserID": format!("u{i}")})).collect();
    assert_code(&im.call("im_open_login_svc/account_check", json!({"CheckItem": too_many})).await, 70402);
    assert_code(&im.call("im_open_login_svc/account_check", json!({"CheckItem": []})).await, 70402);

    // Profile written by the import is readable.
    let v = im.ok("profile/portrait_get", json!({"To_Account": ["cy"], "TagList": ["Tag_Profile_IM_Nick"]})).await;
    assert_eq!(v["UserProfileItem"][0]["ProfileItem"], json!([{"Tag": "Tag_Profile_IM_Nick", "Value": "Cy"}]));
}

#[tokio::test]
async fn account_cap() {
    let im = Im::start(EmulatorConfig { max_accounts: Some(2), ..config() }).await;
    im.accounts(&["a", "b"]).await;
    assert_code(&im.call("im_open_login_svc/account_import", json!({"UserID": "c"})).await, 70398);
    // Re-importing an existing one is fine.
    im.ok("im_open_login_svc/account_import", json!({"UserID": "a"})).await;
}

#[tokio::test]
async fn portrait_set_and_get() {
    let im = Im::start(config()).await;
    im.accounts(&["ann"]).await;
    im.ok(
        "profile/portrait_set",
        json!({"From_Account": "ann", "ProfileItem": [
            {"Tag": "Tag_Profile_IM_Nick", "Value": "Annie"},
            {"Tag": "Tag_Profile_IM_Gender", "Value": "Gender_Type_Female"},
            {"Tag": "Tag_Profile_IM_BirthDay", "Value": 19900101},
            {"Tag": "Tag_Profile_Custom_team", "Value": "blue"}]}),
    )
    .await;
    let v = im
        .ok(
            "profile/portrait_get",
            json!({"To_Account": ["ann", "ghost"], "TagList": ["Tag_Profile_IM_Nick", "Tag_Profile_IM_BirthDay",
                "Tag_Profile_IM_Location", "Tag_Profile_Custom_team"]}),
        )
        .await;
    assert_eq!(v["ErrorDisplay"], "");
    assert_eq!(
        v["UserProfileItem"][0]["ProfileItem"],
        json!([{"Tag": "Tag_Profile_IM_Nick", "Value": "Annie"}, {"Tag": "Tag_Profile_IM_BirthDay", "Value": 19900101},
               {"Tag": "Tag_Profile_Custom_team", "Value": "blue"}]),
        "never-set tags are omitted, uint tags are numbers"
    );
    assert_eq!(v["UserProfileItem"][1]["ResultCode"], 40003);
    assert_eq!(v["Fail_Account"], json!(["ghost"]));

    let set = |items: Value| json!({"From_Account": "ann", "ProfileItem": items});
    assert_code(
        &im.call("profile/portrait_set", set(json!([{"Tag": "Tag_Profile_IM_Gender", "Value": "x"}]))).await,
        40001,
    );
    assert_code(
        &im.call("profile/portrait_set", set(json!([{"Tag": "Tag_Profile_IM_Nick", "Value": 3}]))).await,
        40001,
    );
    assert_code(
        &im.call("profile/portrait_set", set(json!([{"Tag": "Tag_Profile_IM_Level", "Value": "3"}]))).await,
        40001,
    );
    assert_code(
        &im.call("profile/portrait_set", set(json!([{"Tag": "Tag_Profile_IM_Nope", "Value": "3"}]))).await,
        40009,
    );
    assert_code(
        &im.call(
            "profile/portrait_set",
            set(json!([{"Tag": "Tag_Profile_IM_SelfSignature", "Value": "s".repeat(501)}])),
        )
        .await,
        40601,
    );
    assert_code(
        &im.call(
            "profile/portrait_set",
            json!({"From_Account": "ghost", "ProfileItem": [{"Tag": "Tag_Profile_IM_Nick", "Value": "g"}]}),
        )
        .await,
        40003,
    );
    // A failed request changed nothing.
    let v = im.ok("profile/portrait_get", json!({"To_Account": ["ann"], "TagList": ["Tag_Profile_IM_Nick"]})).await;
    assert_eq!(v["UserProfileItem"][0]["ProfileItem"][0]["Value"], "Annie");
    let hundred_one: Vec<String> = (0..101).map(|i| format!("u{i}")).collect();
    assert_code(
        &im.call("profile/portrait_get", json!({"To_Account": hundred_one, "TagList": ["Tag_Profile_IM_Nick"]})).await,
        40001,
    );
    assert_code(&im.call("profile/portrait_get", json!({"TagList": ["Tag_Profile_IM_Nick"]})).await, 40002);
}

#[tokio::test]
async fn friend_import_and_paged_friend_get() {
    let mut cfg = config();
    cfg.limits.friend_get_page_size = 2;
    let im = Im::start(cfg).await;
    im.accounts(&["ann", "b1", "b2", "b3"]).await;
    let v = im
        .ok(
            "sns/friend_import",
            json!({"From_Account": "ann", "AddFriendItem": [
                {"To_Account": "b1", "AddSource": "AddSource_Type_Web", "Remark": "Bee", "GroupName": ["work"], "AddTime": 1700000000},
                {"To_Account": "b2", "AddSource": "AddSource_Type_Android"},
                {"To_Account": "ghost", "AddSource": "AddSource_Type_Web"},
                {"To_Account": "b3", "AddSource": "Web"},
                {"To_Account": "ann", "AddSource": "AddSource_Type_Web"},
                {"To_Account": "b3", "AddSource": "AddSource_Type_Web", "Remark": "r".repeat(97)}]}),
        )
        .await;
    let codes: Vec<i64> =
        v["ResultItem"].as_array().expect("items").iter().map(|i| i["ResultCode"].as_i64().expect("c")).collect();
    assert_eq!(codes, [0, 0, 30003, 30001, 30001, 30001]);
    assert_eq!(v["Fail_Account"], json!(["ghost", "b3", "ann", "b3"]));
    im.ok(
        "sns/friend_import",
        json!({"From_Account": "ann", "AddFriendItem": [{"To_Account": "b3", "AddSource": "AddSource_Type_Web"}]}),
    )
    .await;
    // Re-import updates and succeeds.
    im.ok("sns/friend_import", json!({"From_Account": "ann", "AddFriendItem": [{"To_Account": "b2", "AddSource": "AddSource_Type_Web", "Remark": "two"}]}))
        .await;

    let p1 = im.ok("sns/friend_get", json!({"From_Account": "ann", "StartIndex": 0})).await;
    assert_eq!(p1["FriendNum"], 3);
    assert_eq!(p1["CompleteFlag"], 0);
    assert_eq!(p1["NextStartIndex"], 2);
    assert_eq!(p1["UserDataItem"][0]["To_Account"], "b1");
    assert_eq!(
        p1["UserDataItem"][0]["ValueItem"],
        json!([{"Tag": "Tag_SNS_IM_AddSource", "Value": "AddSource_Type_Web"}, {"Tag": "Tag_SNS_IM_Remark", "Value": "Bee"},
               {"Tag": "Tag_SNS_IM_Group", "Value": ["work"]}, {"Tag": "Tag_SNS_IM_AddTime", "Value": 1700000000}])
    );
    assert_eq!(p1["UserDataItem"][1]["ValueItem"][1], json!({"Tag": "Tag_SNS_IM_Remark", "Value": "two"}));
    let p2 = im.ok("sns/friend_get", json!({"From_Account": "ann", "StartIndex": 2})).await;
    assert_eq!(p2["CompleteFlag"], 1);
    assert_eq!(p2["NextStartIndex"], 0);
    assert_eq!(p2["UserDataItem"].as_array().expect("page").len(), 1);
    // An unchanged StandardSequence suppresses the standard fields (cache validator).
    let seq = p1["StandardSequence"].clone();
    let cached =
        im.ok("sns/friend_get", json!({"From_Account": "ann", "StartIndex": 0, "StandardSequence": seq})).await;
    assert_eq!(cached["UserDataItem"][0]["ValueItem"], json!([]));
    // Friendship is one-way.
    let back = im.ok("sns/friend_get", json!({"From_Account": "b1", "StartIndex": 0})).await;
    assert_eq!(back["FriendNum"], 0);
    assert_code(&im.call("sns/friend_get", json!({"From_Account": "ghost", "StartIndex": 0})).await, 30003);
    let many: Vec<Value> =
        (0..101).map(|i| json!({"To_Account": format!("x{i}"), "AddSource": "AddSource_Type_Web"})).collect();
    assert_code(&im.call("sns/friend_import", json!({"From_Account": "ann", "AddFriendItem": many})).await, 30001);
}
